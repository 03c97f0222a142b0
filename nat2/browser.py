"""Look at an HTML report as a person would: headless Chromium, a screenshot, and what went wrong on the page.

``make report`` checks both HTML outputs (Snakemake's report and ``dvc plots show``'s page) with
:func:`check_page`, and the tests do the same on the tiny chain. It drives Chromium over the DevTools protocol
(a websocket; no Selenium or Playwright, which would download a browser of their own): it loads the page,
collects uncaught exceptions, console errors and failed loads (e.g. a script from an unreachable CDN), waits
until every plot element has been drawn, takes a full-page screenshot, and measures each plot's region in that
screenshot: a region whose pixels are all one colour did not draw.
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nat2.errors import Nat2Error

__all__ = ["PLOT_SELECTORS", "REPORT_GALLERY_JS", "PageCheck", "check_page", "find_chromium"]

#: what counts as a plot on each kind of page: vega-embed's SVG/canvas, and images
PLOT_SELECTORS = ("svg.marks", "canvas.marks", "img")

_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# The page is ready when no image is still loading and every vega view has rendered (vega-embed marks its
# container with the class it adds once the view is drawn); returns the plots' rectangles in page coordinates.
_PLOTS_JS = """
(() => {
  const sel = %s;
  const imgs = [...document.images];
  const loading = imgs.some(i => !i.complete);
  const embeds = [...document.querySelectorAll('.vega-embed')];
  const pending = embeds.filter(e => !e.querySelector('svg.marks, canvas.marks')).length;
  const rects = [...document.querySelectorAll(sel.join(','))].map(e => {
    const r = e.getBoundingClientRect();
    return {tag: e.tagName.toLowerCase(), x: r.left + window.scrollX, y: r.top + window.scrollY,
            w: r.width, h: r.height, ok: e.tagName !== 'IMG' || e.naturalWidth > 0,
            src: e.tagName === 'IMG' ? (e.getAttribute('src') || '').slice(0, 80) : ''};
  }).filter(r => r.w >= 24 && r.h >= 24);
  return JSON.stringify({loading, pending, rects});
})()
"""


#: Snakemake's report shows a figure only after clicks; this shows every image result of the report at once, below
#: the app, so one screenshot holds them all (a no-op on other pages)
REPORT_GALLERY_JS = """
(() => {
  if (typeof results === 'undefined') return 0;
  const box = document.createElement('div');
  box.id = 'nat2-gallery';
  box.style.cssText = 'position:relative;background:#fff;padding:8px;clear:both';
  const images = Object.values(results).filter(r => (r.mime_type || '').startsWith('image/'));
  for (const r of images) {
    const fig = document.createElement('figure');
    const cap = document.createElement('figcaption');
    cap.textContent = r.name;
    const img = document.createElement('img');
    img.src = r.data_uri;
    img.style.maxWidth = '600px';
    fig.append(cap, img);
    box.append(fig);
  }
  document.body.append(box);
  return images.length;
})()
"""


@dataclass
class PageCheck:
    """What :func:`check_page` saw.

    Attributes:
        url: the page loaded.
        errors: uncaught exceptions, console errors and failed loads, one line each.
        plots: per plot element: tag, rectangle, and the standard deviation of its pixels in the screenshot.
        screenshot: where the full-page PNG was written.
    """

    url: str
    errors: list[str] = field(default_factory=list)
    plots: list[dict[str, Any]] = field(default_factory=list)
    screenshot: Path | None = None

    @property
    def blank_plots(self) -> list[dict[str, Any]]:
        """Plot elements that did not draw (image failed to decode, or a region of one colour)."""
        return [p for p in self.plots if not p["ok"] or p["std"] < 2.0]


def find_chromium() -> str:
    """The Chromium executable; raises the one-line error naming the package when there is none."""
    for name in _BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    raise Nat2Error("no Chromium found (looked for chromium, chromium-browser, google-chrome); install it: "
                    "apt-get install chromium")


class _DevTools:
    """One page target of a headless Chromium, driven over its DevTools websocket."""

    def __init__(self, ws_url: str) -> None:
        from websocket import create_connection

        self._ws = create_connection(ws_url, timeout=60, suppress_origin=True)
        self._ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        msg_id = next(self._ids)
        self._ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self._ws.recv())
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise Nat2Error(f"Chromium: {method} failed: {msg['error'].get('message')}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_for(self, event: str, timeout: float) -> None:
        from websocket import WebSocketTimeoutException

        deadline = time.monotonic() + timeout
        while not any(e.get("method") == event for e in self.events):
            if time.monotonic() > deadline:
                raise Nat2Error(f"Chromium: no {event} within {timeout:.0f} s")
            self._ws.settimeout(max(deadline - time.monotonic(), 0.1))
            try:
                self.events.append(json.loads(self._ws.recv()))
            except WebSocketTimeoutException:  # loop and check the deadline
                continue
        self._ws.settimeout(60)

    def close(self) -> None:
        self._ws.close()


def _start(browser: str, profile: Path, width: int, height: int) -> tuple[subprocess.Popen[bytes], str]:
    proc = subprocess.Popen([browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                             "--disable-dev-shm-usage", "--hide-scrollbars", f"--user-data-dir={profile}",
                             "--remote-debugging-port=0", f"--window-size={width},{height}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    port_file, deadline = profile / "DevToolsActivePort", time.monotonic() + 60
    while not port_file.is_file() or not port_file.read_text().strip():
        if proc.poll() is not None or time.monotonic() > deadline:
            _stop(proc)
            raise Nat2Error(f"Chromium ({browser}) did not start (exit {proc.poll()}); run it by hand with "
                            "--headless=new to see why")
        time.sleep(0.1)
    port = int(port_file.read_text().split()[0])
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30) as resp:
        targets = json.load(resp)
    page = next(t for t in targets if t.get("type") == "page")
    return proc, page["webSocketDebuggerUrl"]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """End Chromium and its helper processes (renderer, zygote, crash handler): its whole process group."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the helpers are reaped by init; wait until none is left writing
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)


def _errors(events: Sequence[dict[str, Any]]) -> list[str]:
    out = []
    for e in events:
        method, p = e.get("method"), e.get("params", {})
        if method == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            out.append(f"exception: {d.get('exception', {}).get('description') or d.get('text')}".splitlines()[0])
        elif method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            out.append("console.error: " + " ".join(str(a.get("value", a.get("description", "")))
                                                    for a in p.get("args", [])))
        elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            entry = p["entry"]
            out.append(f"{entry.get('source')}: {entry.get('text')} {entry.get('url', '')}".strip())
    return out


def check_page(html: Path, screenshot: Path, *, width: int = 1280, height: int = 1600, timeout: float = 90.0,
               script: str | None = None, browser: str | None = None) -> PageCheck:
    """Load ``html`` in headless Chromium, wait for its plots, screenshot the whole page into ``screenshot``.

    Args:
        html: the page (a local file).
        screenshot: the PNG to write.
        width: the window's width (the screenshot covers the whole page).
        height: the window's height.
        timeout: seconds to wait for the load and for the plots to draw.
        script: JavaScript run after the load (e.g. open a report's section), before the plots are waited for.
        browser: the Chromium executable (default: :func:`find_chromium`).
    """
    import numpy as np
    from PIL import Image

    browser = browser or find_chromium()
    url = html.resolve().as_uri()
    check = PageCheck(url)
    with tempfile.TemporaryDirectory(prefix="nat2-chromium-", ignore_cleanup_errors=True) as profile:
        proc, ws_url = _start(browser, Path(profile), width, height)
        try:
            dev = _DevTools(ws_url)
            for domain in ("Page", "Runtime", "Log"):
                dev.call(f"{domain}.enable")
            dev.call("Page.navigate", url=url)
            dev.wait_for("Page.loadEventFired", timeout)
            if script:
                dev.call("Runtime.evaluate", expression=script, awaitPromise=True)
            deadline, state = time.monotonic() + timeout, {}
            while time.monotonic() < deadline:
                state = json.loads(dev.call("Runtime.evaluate", expression=_PLOTS_JS % json.dumps(PLOT_SELECTORS),
                                            returnByValue=True)["result"]["value"])
                if not state["loading"] and not state["pending"]:
                    break
                time.sleep(0.25)
            else:
                check.errors.append(f"plots still drawing after {timeout:.0f} s ({state.get('pending')} vega views)")
            time.sleep(0.5)  # one more frame for transitions
            size = dev.call("Page.getLayoutMetrics")["cssContentSize"]
            clip = {"x": 0, "y": 0, "width": max(size["width"], width), "height": size["height"], "scale": 1}
            shot = dev.call("Page.captureScreenshot", format="png", captureBeyondViewport=True, clip=clip)
            dev.call("Runtime.evaluate", expression="1")  # drain events queued meanwhile
            check.errors += _errors(dev.events)
            dev.close()
        finally:
            _stop(proc)
    png = base64.b64decode(shot["data"])
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    screenshot.write_bytes(png)
    check.screenshot = screenshot
    image = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float64)
    scale = image.shape[1] / width  # device pixels per CSS pixel
    for r in state.get("rects", []):
        x0, y0 = int(r["x"] * scale), int(r["y"] * scale)
        region = image[y0:y0 + int(r["h"] * scale), x0:x0 + int(r["w"] * scale)]
        check.plots.append({**r, "std": float(region.std()) if region.size else 0.0})
    return check
