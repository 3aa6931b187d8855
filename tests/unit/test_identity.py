"""An Actor is built one way from a logged-in user (geodata.identity.Actor.for_user)."""
from __future__ import annotations

from dataclasses import dataclass

from geodata import events as ev
from geodata.identity import Actor, ApiClient
from geodata.users import User


def _user(display_name: str) -> User:
    return User(id=42, username="vo_07", display_name=display_name, role="village_official", town_id=None,
                village_id=3, person_id=None, active=True, is_demo=False)


def test_the_display_name_is_shown_and_the_id_kept():
    assert Actor.for_user(_user("村干部甲")) == Actor("村干部甲", "village_official", 42)


def test_an_empty_display_name_falls_back_to_the_username():
    assert Actor.for_user(_user("")).name == "vo_07"
    assert Actor.for_user(_user("   ")).name == "vo_07"


def test_a_session_user_wrapper_is_unwrapped():
    @dataclass
    class SessionUser:  # flask-login's wrapper holds the User as ``.user``
        user: User
        role: str = "ignored"

    assert Actor.for_user(SessionUser(_user("村干部甲"))) == Actor("村干部甲", "village_official", 42)


def test_the_event_service_re_exports_the_identities():
    assert ev.Actor is Actor and ev.ApiClient is ApiClient
