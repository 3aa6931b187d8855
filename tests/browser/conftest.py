"""Browser tests: the app served on 127.0.0.1 against the test database, driven by
Playwright with Debian's Chromium (never a downloaded browser)."""
from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

from tests.conftest import load_demo_county, make_engine_for, make_test_database

CHROMIUM = os.environ.get("DVMAP_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


def pytest_collection_modifyitems(items):
    for item in items:
        if "/browser/" in str(item.fspath):
            item.add_marker(pytest.mark.browser)


# -- a database of their own --------------------------------------------------------
# Browser tests act as people do and commit it; the integration tests before them
# commit too (events, sensor alarms, grid versions). Each side gets its own demo
# county, so neither sees the other's leftovers. These fixtures override the
# root conftest's of the same names for the tests in this folder.

@pytest.fixture(scope="session")
def pg():
    yield from make_test_database("dvmap_test_browser")


@pytest.fixture(scope="session")
def demo_db(pg):
    return load_demo_county(pg)


@pytest.fixture(scope="session")
def owner_engine(pg):
    yield from make_engine_for(pg.owner_url)


@pytest.fixture(scope="session")
def app_engine(pg):
    yield from make_engine_for(pg.app_url)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def live_app(pg, demo_db):
    """The Dash app on a free localhost port, served by werkzeug in a thread."""
    from werkzeug.serving import make_server

    from map_app.app import create_app

    app = create_app(pg.app_url)
    port = _free_port()
    server = make_server("127.0.0.1", port, app.server, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"url": f"http://127.0.0.1:{port}", "app": app}
    server.shutdown()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: apt-get install chromium", pytrace=False)
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-quic"],
        )
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1600, "height": 900}, locale="zh-CN")
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.errors = errors
    yield pg
    context.close()


def shot(page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def login(page, base_url: str, username: str, password: str | None = None, lang: str = "zh") -> None:
    """Sign in through the real login form."""
    from etl.demo_accounts import demo_password

    page.goto(f"{base_url}/login?lang={lang}")
    page.fill("#username", username)
    page.fill("#password", password or demo_password(username))
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url, timeout=15_000)
