"""Who acts: the identities the services record (a person, a system job, an API client).

Kept apart from the services that use them (events, grids, sensors, analysis), so
none of those imports another sideways just to name who did something.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Actor:
    """Who acts: a user, a system job or an API client.

    Parameters
    ----------
    name : str
        Shown in the timeline (user name, ``system``, client name).
    role : str
        One of :data:`geodata.workflow.ROLES`.
    user_id : int, optional
        The user's id (``app_user.id``), kept in history next to the name.
    """

    name: str
    role: str
    user_id: int | None = None

    @classmethod
    def system(cls, name: str = "system") -> "Actor":
        """A system job (overdue watch, sensor alarms, CLI) as an actor."""
        return cls(name, "system")

    @classmethod
    def for_user(cls, user: Any) -> "Actor":
        """The actor of a logged-in user — the one way callbacks and endpoints build it.

        The name shown in timelines is the user's display name, falling back to the
        username when it is empty: history is read by people (村干部甲, not ``vo_07``),
        and the stable identity is kept anyway in ``user_id``.

        Parameters
        ----------
        user : geodata.users.User or an object with a ``user`` attribute holding one
            (flask-login's session user); needs ``username``, ``display_name``,
            ``role`` and ``id``.

        Returns
        -------
        Actor
        """
        inner = getattr(user, "user", None)
        if inner is not None and hasattr(inner, "username"):
            user = inner
        name = (getattr(user, "display_name", None) or "").strip() or user.username
        return cls(name, user.role, user.id)


@dataclass(frozen=True)
class ApiClient:
    """An external system allowed to report through Open311."""

    id: int
    name: str
    village_ids: frozenset[int] | None
    source: str
    active: bool
