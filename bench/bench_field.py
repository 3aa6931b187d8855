"""网格通 (/field) as a phone on a slow link feels it: page weight and the worker's waits.

Run by hand (not part of ``make bench`` yet, not a test)::

    .venv/bin/python -m bench.bench_field

It makes a throwaway database with the demo county (bench/common.py), serves the real app
on localhost, and drives Debian's Chromium as a phone (390×844, a phone User-Agent for
every request — the service worker's too). Printed:

* transferred bytes on the first visit (login page → tasks listed) and on a repeat visit
  (the app shell from the service worker), from CDP ``Network.loadingFinished``
  ``encodedDataLength`` of the page (responses the service worker answered are counted
  apart), and the bytes the server sent (all requests, the service worker's own included);
* the same first-load bytes for the desktop page ``/`` (the baseline);
* under CDP throttling in Lighthouse's "slow 4G" profile (1.6 Mbps down, 750 Kbps up,
  150 ms RTT, 4× CPU slowdown): login → tasks usable (first and repeat visit), and tap on
  提交 → report confirmed (2xx) with one photo resized to 1600 px.

CDP throttling applies to the page's own requests; the service worker's network-first
reads of /api/field/* on a repeat visit are not throttled (CDP has no page-level handle on
the worker), so the repeat-visit time is optimistic by about one round trip per read.
"""
from __future__ import annotations

import socket
import threading
import time

KIB = 1024
PHONE_UA = ("Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/120.0.0.0 Mobile Safari/537.36")
SLOW_4G = {"offline": False, "latency": 150, "downloadThroughput": 1_600_000 / 8, "uploadThroughput": 750_000 / 8}
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]


class ByteCounter:
    """WSGI middleware: bytes of response bodies the server sent, per request path."""

    def __init__(self, app):
        self.app, self.lock, self.sent, self.uploaded = app, threading.Lock(), [], {}

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        self.uploaded[path] = int(environ.get("CONTENT_LENGTH") or 0)
        chunks = self.app(environ, start_response)
        n = 0
        try:
            for chunk in chunks:
                n += len(chunk)
                yield chunk
        finally:
            if hasattr(chunks, "close"):
                chunks.close()
            with self.lock:
                self.sent.append((path, n))

    def take(self) -> list[tuple[str, int]]:
        with self.lock:
            out, self.sent = self.sent, []
        return out


class NetLog:
    """CDP network accounting of one page: bytes from the network and from the service worker."""

    def __init__(self, page):
        self.cdp = page.context.new_cdp_session(page)
        self.cdp.send("Network.enable")
        self.from_sw: set[str] = set()
        self.urls: dict[str, str] = {}
        self.net_bytes = self.sw_bytes = 0
        self.per_url: list[tuple[str, int]] = []
        self.cdp.on("Network.responseReceived", self._response)
        self.cdp.on("Network.loadingFinished", self._finished)

    def _response(self, e):
        self.urls[e["requestId"]] = e["response"]["url"]
        if e["response"].get("fromServiceWorker"):
            self.from_sw.add(e["requestId"])

    def _finished(self, e):
        n = int(e.get("encodedDataLength", 0))
        if e["requestId"] in self.from_sw:
            self.sw_bytes += n
        else:
            self.net_bytes += n
            self.per_url.append((self.urls.get(e["requestId"], "?"), n))

    def reset(self):
        self.net_bytes = self.sw_bytes = 0
        self.per_url = []
        self.from_sw.clear()

    def throttle(self):
        self.cdp.send("Network.emulateNetworkConditions", SLOW_4G)
        self.cdp.send("Emulation.setCPUThrottlingRate", {"rate": 4})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _seed_tasks(app_url: str) -> dict:
    """Three events dispatched to the demo worker, so the task list is not empty."""
    from sqlalchemy import text

    from geodata import events as ev
    from geodata.db import SYSTEM, make_engine, make_sessionmaker, scoped

    engine = make_engine(app_url)
    actor = ev.Actor("bench", "system")
    with scoped(make_sessionmaker(engine), SYSTEM) as s, s.begin():
        p = s.execute(text("""
            SELECT ST_X(ST_PointOnSurface(g.geom)) AS lon, ST_Y(ST_PointOnSurface(g.geom)) AS lat
              FROM app_user u JOIN grid g ON g.worker_id = u.person_id AND g.valid_to IS NULL
             WHERE u.username = 'worker' ORDER BY g.code LIMIT 1""")).mappings().one()
        for n in range(3):
            ref = ev.create_event(s, lon=p["lon"] + n * 2e-4, lat=p["lat"], subclass="0101", source="patrol",
                                  actor=actor, description=f"bench task {n + 1}")
            ev.transition(s, ref.id, "accept", actor, 1)
            ev.transition(s, ref.id, "dispatch", actor, 2)
    engine.dispose()
    return dict(p)


def _login(page, base: str, username: str) -> None:
    from etl.demo_accounts import demo_password

    page.goto(f"{base}/login")
    page.fill("#username", username)
    page.fill("#password", demo_password(username))


def _big_photo(page) -> bytes:
    """A 4000×3000 camera-like JPEG (noise, so it compresses like a photo), made by the browser."""
    import base64

    data = page.evaluate("""async () => {
        const c = document.createElement('canvas'); c.width = 4000; c.height = 3000;
        const x = c.getContext('2d'); const img = x.createImageData(4000, 3000);
        for (let i = 0; i < img.data.length; i += 4) {
          const v = (i / 4) % 4000 / 16 + Math.random() * 60;
          img.data[i] = v; img.data[i + 1] = 120 + Math.random() * 60; img.data[i + 2] = 200 - v / 2; img.data[i + 3] = 255;
        }
        x.putImageData(img, 0, 0);
        const b = await new Promise(r => c.toBlob(r, 'image/jpeg', 0.92));
        const buf = new Uint8Array(await b.arrayBuffer()); let s = '';
        for (let i = 0; i < buf.length; i += 0x8000) s += String.fromCharCode.apply(null, buf.subarray(i, i + 0x8000));
        return btoa(s);
    }""")
    return base64.b64decode(data)


def _kib(n: int) -> str:
    return f"{n / KIB:,.0f} KiB"


def run() -> None:
    from playwright.sync_api import sync_playwright
    from werkzeug.serving import make_server

    from bench.common import bench_database, machine
    from etl.demo_accounts import ensure_demo_accounts
    from etl.demo import load_demo
    from map_app.app import create_app

    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no request log between the figures
    print(machine())
    with bench_database("dvmap_bench_field") as db:
        load_demo(db["owner"], seed=42)
        ensure_demo_accounts(db["owner"])
        spot = _seed_tasks(db["app"])
        app = create_app(db["app"])
        counter = ByteCounter(app.server.wsgi_app)
        app.server.wsgi_app = counter
        port = _free_port()
        server = make_server("127.0.0.1", port, app.server, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{port}"
        rows = []
        try:
            with sync_playwright() as p:
                phone = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                          args=ARGS + [f"--user-agent={PHONE_UA}"])
                ctx = phone.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
                                        device_scale_factor=2, locale="zh-CN", permissions=["geolocation"],
                                        geolocation={"longitude": spot["lon"], "latitude": spot["lat"], "accuracy": 10})
                page = ctx.new_page()
                net = NetLog(page)
                net.throttle()
                _login(page, base, "worker")
                net.reset()
                counter.take()
                t0 = time.perf_counter()
                page.click("button[type=submit]")
                page.wait_for_selector(".task", timeout=60_000)
                first_s = time.perf_counter() - t0
                page.wait_for_function("navigator.serviceWorker.controller !== null", timeout=60_000)
                page.wait_for_selector("body[data-warm='1']", timeout=60_000)
                page.wait_for_timeout(1500)
                first_net, first_server = net.net_bytes, sum(n for _, n in counter.take())
                biggest = sorted(net.per_url, key=lambda x: -x[1])[:6]
                rows.append(("phone first visit: transferred (CDP, page)", _kib(first_net), "≤ 400 KiB"))
                rows.append(("  … all bytes the server sent (incl. service worker)", _kib(first_server), ""))
                rows.append(("phone first visit: login → tasks usable (slow 4G, 4× CPU)", f"{first_s:.2f} s", "≤ 5 s"))

                # Repeat visit: a new tab on the signed-in phone, the shell from the service worker.
                repeats = []
                for attempt in range(3):  # the median of three visits, each in a new tab
                    if attempt:
                        page2.close()
                    page2 = ctx.new_page()
                    net2 = NetLog(page2)
                    net2.throttle()
                    counter.take()
                    t0 = time.perf_counter()
                    page2.goto(base + "/field")
                    page2.wait_for_selector(".task", timeout=60_000)
                    repeats.append(time.perf_counter() - t0)
                    page2.wait_for_timeout(1500)
                    sent = counter.take()
                repeat_s = sorted(repeats)[1]
                js_server = sum(n for path, n in sent if path.endswith((".js", ".css")) and path != "/sw.js")
                rows.append(("phone repeat visit: transferred (CDP, page network)", _kib(net2.net_bytes),
                             "≈ 0 KiB of JS"))
                rows.append(("  … from the service worker cache (not network)", _kib(net2.sw_bytes), ""))
                rows.append(("  … JS/CSS the server sent (sw.js update check apart)", _kib(js_server), "≈ 0"))
                rows.append(("  … all bytes the server sent (shell, sw.js check, API)",
                             _kib(sum(n for _, n in sent)), ""))
                rows.append(("phone repeat visit: open → tasks usable (slow 4G, 4× CPU), median of 3",
                             f"{repeat_s:.2f} s", "≤ 1.5 s  (" + ", ".join(f"{x:.2f}" for x in repeats) + ")"))

                # Report with one photo: resized to 1600 px when picked, timed from the tap on 提交.
                photo = _big_photo(page2)
                page2.click("#tabs button[data-tab=report]")
                page2.wait_for_selector("#cat option[value='0101']", state="attached")
                page2.select_option("#cat", "0101")
                page2.fill("#desc", "bench: 路边垃圾堆放")
                with page2.expect_file_chooser() as chooser:
                    page2.click(".sheet .photo-pick")
                chooser.value.set_files([{"name": "camera.jpg", "mimeType": "image/jpeg", "buffer": photo}])
                page2.wait_for_selector("#report-thumbs img", timeout=60_000)
                page2.click("#here")
                page2.wait_for_function("document.getElementById('point').textContent.includes('GPS')")
                counter.take()
                t0 = time.perf_counter()
                page2.click("#submit")
                page2.wait_for_selector("[data-testid=report-message].ok", timeout=60_000)
                report_s = time.perf_counter() - t0
                upload = counter.uploaded.pop("/api/field/reports", 0)
                rows.append((f"report + 1 photo ({len(photo) / KIB / 1024:.1f} MB 4000×3000 → 1600 px): tap → confirmed",
                             f"{report_s:.2f} s", "≤ 4 s"))
                rows.append(("  … request uploaded (multipart, resized JPEG)", _kib(upload), ""))
                phone.close()

                # Baseline: the desktop page's first load, same machine, no throttling needed for bytes.
                desk = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=ARGS)
                dctx = desk.new_context(viewport={"width": 1600, "height": 900}, locale="zh-CN")
                dpage = dctx.new_page()
                dnet = NetLog(dpage)
                _login(dpage, base, "village")
                dnet.reset()
                dpage.click("button[type=submit]")
                dpage.wait_for_selector(".kpi[data-kpi=closure]", timeout=60_000)
                dpage.wait_for_timeout(3000)
                rows.append(("desktop '/' first visit: transferred (CDP, baseline)", _kib(dnet.net_bytes), ""))
                desk.close()
        finally:
            server.shutdown()
            app.server.extensions["dvmap"].engine.dispose()
    width = max(len(r[0]) for r in rows)
    print()
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:>10}  {target}")
    print("\nlargest first-visit transfers:")
    for url, n in biggest:
        print(f"  {_kib(n):>9}  {url.split('?')[0].replace(base, '')}")


if __name__ == "__main__":
    run()
