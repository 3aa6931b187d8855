"""Login throttling: failed logins counted by address, by (account, address) and by account.

The counting is the ``limits`` library's fixed-window strategy; the counters are
rows of ``login_throttle`` (migration 0016) written in the login's own
transaction, so every gunicorn worker and app instance on the database shares
them (an in-memory store would give each worker its own allowance).

Why three limits, and no hard lock:

* per client address (any account): stops one address guessing or spraying
  passwords over many accounts;
* per (account, address): an address gets a few tries at one account, then is
  refused for that account — without touching anyone else's tries at it, so five
  guesses at ``admin`` no longer lock the real administrator out;
* per account (any address), much looser: bounds a distributed guess at one
  account. It is the only limit an attacker with many addresses could keep
  exhausted; a browser that has signed in to the account before (the login's
  device cookie) is exempt from it, and everyone else gets in once the window
  after the attack ends (at most :data:`PER_ACCOUNT`'s window).

Only failures are counted (a wrong password, an unknown user, a disabled
account); a refused attempt is not counted again, and a success clears the
(account, address) counter. IPv6 addresses are counted per /64, the block one
subscriber usually holds. Behind a reverse proxy the address must be the
client's (werkzeug's ProxyFix), or every client would share the proxy's counts.
"""
from __future__ import annotations

import ipaddress
import time

from limits import parse
from limits.storage import Storage
from limits.strategies import FixedWindowRateLimiter
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

#: Failed logins from one client address, any account.
PER_ADDRESS = parse("20 per 15 minutes")
#: Failed logins at one account from one address.
PER_ACCOUNT_ADDRESS = parse("5 per 15 minutes")
#: Failed logins at one account from all addresses (device-cookie browsers exempt).
PER_ACCOUNT = parse("50 per 15 minutes")


class PostgresStorage(Storage):
    """A ``limits`` storage (fixed window) in the ``login_throttle`` table, inside ``session``."""

    STORAGE_SCHEME = None  # built directly with a session, never from a URI

    def __init__(self, session: Session):
        super().__init__()
        self.session = session

    @property
    def base_exceptions(self):
        return SQLAlchemyError

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        return self.session.execute(
            text(
                """INSERT INTO login_throttle AS t (key, hits, expires_at)
                   VALUES (:k, :n, clock_timestamp() + make_interval(secs => :e))
                   ON CONFLICT (key) DO UPDATE SET
                     hits = CASE WHEN t.expires_at <= clock_timestamp() THEN EXCLUDED.hits
                                 ELSE t.hits + EXCLUDED.hits END,
                     expires_at = CASE WHEN t.expires_at <= clock_timestamp() THEN EXCLUDED.expires_at
                                       ELSE t.expires_at END
                   RETURNING hits"""
            ),
            {"k": key, "n": amount, "e": float(expiry)},
        ).scalar_one()

    def get(self, key: str) -> int:
        hits = self.session.execute(
            text("SELECT hits FROM login_throttle WHERE key = :k AND expires_at > clock_timestamp()"), {"k": key}
        ).scalar()
        return int(hits or 0)

    def get_expiry(self, key: str) -> float:
        at = self.session.execute(
            text("SELECT extract(epoch FROM expires_at) FROM login_throttle WHERE key = :k"), {"k": key}
        ).scalar()
        return float(at) if at is not None else time.time()

    def check(self) -> bool:
        return self.session.execute(text("SELECT true")).scalar()

    def reset(self) -> int | None:
        return self.session.execute(text("DELETE FROM login_throttle")).rowcount

    def clear(self, key: str) -> None:
        self.session.execute(text("DELETE FROM login_throttle WHERE key = :k"), {"k": key})

    def purge_expired(self) -> None:
        """Drop windows that ended; keeps the table as small as the recent failures."""
        self.session.execute(text("DELETE FROM login_throttle WHERE expires_at < clock_timestamp()"))


def client_key(ip: str | None) -> str:
    """The address a limit counts: the IPv4 address, or the IPv6 /64 it belongs to."""
    try:
        addr = ipaddress.ip_address((ip or "").strip())
    except ValueError:
        return "unknown"
    if addr.version == 6:
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.ip_network(f"{addr}/64", strict=False))
    return str(addr)


def account_key(username: str | None) -> str:
    """Accounts are counted case-insensitively (logins are), by at most 64 characters."""
    return (username or "").strip().lower()[:64] or "-"


class LoginThrottle:
    """The three login limits, counted in ``session``'s transaction.

    Parameters
    ----------
    session : Session
        Any session that may write ``login_throttle`` (scope does not matter: no RLS).
    """

    def __init__(self, session: Session):
        self.storage = PostgresStorage(session)
        self.limiter = FixedWindowRateLimiter(self.storage)

    def _checks(self, username: str, ip: str | None, trusted_device: bool):
        user, addr = account_key(username), client_key(ip)
        yield PER_ADDRESS, ("login-addr", addr)
        yield PER_ACCOUNT_ADDRESS, ("login-acct-addr", user, addr)
        if not trusted_device:
            yield PER_ACCOUNT, ("login-acct", user)

    def refused(self, username: str, ip: str | None, *, trusted_device: bool = False) -> str | None:
        """The name of the exhausted limit that refuses this attempt, or None to go ahead."""
        for item, keys in self._checks(username, ip, trusted_device):
            if not self.limiter.test(item, *keys):
                return keys[0]
        return None

    def failed(self, username: str, ip: str | None) -> None:
        """Count a failed attempt against all three limits."""
        self.storage.purge_expired()
        for item, keys in self._checks(username, ip, trusted_device=False):
            self.limiter.hit(item, *keys)

    def succeeded(self, username: str, ip: str | None) -> None:
        """A right password from this address: its tries at this account start afresh."""
        self.limiter.clear(PER_ACCOUNT_ADDRESS, "login-acct-addr", account_key(username), client_key(ip))
