"""Errors of the analyses: one typed, bilingual error with a machine-readable code."""
from __future__ import annotations

from geodata.i18n import BilingualError


class AnalysisError(BilingualError):
    """Input an analysis cannot work with (empty selection, too few events, eps <= 0 ...).

    Parameters
    ----------
    code : str
        Stable reason code for tests and the CLI (``empty_selection``, ``too_few_events``,
        ``bad_eps``, ``bad_distance``, ``no_geometry``, ``raster_outside``, ...).
    message_zh, message_en : str
        What a person reads, and what to do about it.
    """

    def __init__(self, code: str, message_zh: str, message_en: str, **details):
        super().__init__(message_zh, message_en)
        self.code = code
        self.details = details
