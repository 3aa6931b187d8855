"""Keys of sensor gateways: ``api_client`` rows of source ``sensor``."""
from __future__ import annotations

from typing import Iterable

from sqlalchemy.orm import Session

from geodata import events as ev
from geodata.identity import ApiClient


def create_gateway_key(session: Session, name: str, village_ids: Iterable[int] | None = None) -> tuple[int, str]:
    """Issue a key for a sensor gateway (an ``api_client`` of source ``sensor``); shown only once.

    Parameters
    ----------
    session : Session
    name : str
        Unique name of the gateway.
    village_ids : iterable of int, optional
        Villages whose sensors it may report for; None = the whole county.

    Returns
    -------
    (int, str)
        The client id and the plaintext key.
    """
    return ev.create_api_client(session, name, village_ids, source="sensor")


def find_gateway(session: Session, key: str | None) -> ApiClient | None:
    """The active sensor gateway holding ``key``, or None (other API clients' keys do not count)."""
    client = ev.find_api_client(session, key)
    return client if client is not None and client.source == "sensor" else None
