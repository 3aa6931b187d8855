"""The villagers' channel (issue 17): public reports, me too, tracking codes, 评价, points, duplicates.

* :mod:`~geodata.public.intake` — a report as 待核实, open reports nearby, 我也遇到了;
* :mod:`~geodata.public.tracking` — the public timeline by tracking code, the reporter's
  评价 (RATE as role ``citizen``), points (积分) with a monthly cap, 满意率;
* :mod:`~geodata.public.merge` — duplicate suggestions, merge (合并) and unmerge;
* :mod:`~geodata.public.common` — settings, keyed hashes, the plain-words categories,
  the sensitive subclasses (never in a public read).
"""
from geodata.public.common import (CATEGORIES, PUBLIC_EVENT_SQL, PublicError, PublicNotFound, PublicSettings,
                                   mask_phones, sensitive_subclasses)
from geodata.public.intake import (MAX_PUBLIC_PHOTOS, PUBLIC_ACTOR, STATE_LABELS_PUBLIC, PublicReceipt, follow,
                                   followers, nearby, public_photo, submit_report)
from geodata.public.merge import MergeStep, duplicate_candidates, merge, merge_rule_count, panel_action, unmerge
from geodata.public.tracking import (RATING_LABELS, RATING_VALUES, award_points, points_by_village, rate,
                                     satisfaction, track)

__all__ = [
    "CATEGORIES", "mask_phones", "PUBLIC_EVENT_SQL", "PublicError", "PublicNotFound", "PublicSettings", "sensitive_subclasses",
    "MAX_PUBLIC_PHOTOS", "PUBLIC_ACTOR", "STATE_LABELS_PUBLIC", "PublicReceipt", "follow", "followers", "nearby",
    "public_photo", "submit_report", "MergeStep", "duplicate_candidates", "merge", "merge_rule_count",
    "panel_action", "unmerge",
    "RATING_LABELS", "RATING_VALUES", "award_points", "points_by_village", "rate", "satisfaction", "track",
]
