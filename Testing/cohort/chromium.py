"""Headless Chromium driven over the DevTools protocol, for the report tests: load a page as
a screen or as print, collect console errors, evaluate layout checks, take screenshots and
print to PDF.

Chromium is a Debian package (``.ci/run`` installs it in CI); the protocol client is
``websocket-client`` (a test extra).  Only the loopback address is used.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: A4 with the reports' @page margins (12 mm each side): the width a printed page lays out in
A4_PRINT_WIDTH_PX = round((210 - 24) / 25.4 * 96)


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


class Chromium:
    """One headless browser with one page.  Use as a context manager."""

    def __init__(self, binary: str, timeout_s: float = 60.0):
        self.binary = binary
        self.timeout_s = timeout_s
        self._id = 0
        self.events: list[dict] = []

    def __enter__(self) -> "Chromium":
        import websocket
        self._profile = tempfile.mkdtemp(prefix="calcinosis-chromium-")
        self._proc = subprocess.Popen(
            [self.binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", "--no-default-browser-check", "--hide-scrollbars", "--remote-debugging-address=127.0.0.1",
             "--remote-debugging-port=0", f"--user-data-dir={self._profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = Path(self._profile) / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout_s
        while not (port_file.is_file() and port_file.read_text().strip()):
            if time.monotonic() > deadline or self._proc.poll() is not None:
                self.__exit__(None, None, None)
                raise RuntimeError(f"{self.binary} did not start (exit code {self._proc.poll()})")
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            pages = [t for t in json.load(r) if t.get("type") == "page"]
        self._ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=self.timeout_s,
                                               suppress_origin=True)
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable")
        return self

    def __exit__(self, *exc) -> None:
        try:
            if getattr(self, "_ws", None) is not None:
                self._ws.close()
        finally:
            if self._proc.poll() is None:
                self._proc.terminate()
                try:
                    self._proc.wait(10)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
            shutil.rmtree(self._profile, ignore_errors=True)

    # ------------------------------------------------------------------ protocol
    def send(self, method: str, **params) -> dict:
        self._id += 1
        self._ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            msg = json.loads(self._ws.recv())
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def _wait_event(self, method: str) -> dict:
        deadline = time.monotonic() + self.timeout_s
        seen = len(self.events)
        while time.monotonic() < deadline:
            for e in self.events[seen:]:
                if e.get("method") == method:
                    return e
            seen = len(self.events)
            self.events.append(json.loads(self._ws.recv()))
        raise TimeoutError(method)

    # ------------------------------------------------------------------ pages
    def load(self, path: Path, media: str = "screen", width: int = 1200, height: int = 900) -> None:
        """Open ``path``; ``media`` 'print' lays it out as printed (on an A4-wide page)."""
        self.events.clear()
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        self.send("Emulation.setEmulatedMedia", media=media)
        self.send("Page.navigate", url=Path(path).resolve().as_uri())
        self._wait_event("Page.loadEventFired")

    def console_errors(self) -> list[str]:
        """Errors the page produced: console.error, uncaught exceptions, failed loads."""
        out = []
        for e in self.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append(" ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
            elif m == "Runtime.exceptionThrown":
                out.append(p.get("exceptionDetails", {}).get("text", "exception"))
            elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                out.append(p["entry"].get("text", ""))
        return out

    def evaluate(self, expression: str):
        res = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in res:
            raise RuntimeError(f"{expression[:60]}…: {res['exceptionDetails'].get('text')}")
        return res["result"].get("value")

    def screenshot(self, path: Path) -> Path:
        """The whole page (not only the window) as a PNG."""
        size = self.evaluate("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
        data = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                         clip={"x": 0, "y": 0, "width": size[0], "height": min(size[1], 16000), "scale": 1})["data"]
        Path(path).write_bytes(base64.b64decode(data))
        return Path(path)

    def pdf(self) -> bytes:
        """The page printed as Chromium's "Save as PDF" does (A4, the page's own @page margins)."""
        data = self.send("Page.printToPDF", paperWidth=210 / 25.4, paperHeight=297 / 25.4, preferCSSPageSize=True,
                         printBackground=True)["data"]
        return base64.b64decode(data)


def pdf_page_count(pdf: bytes) -> int:
    """Pages of a PDF Chromium wrote (its page dictionaries are not compressed)."""
    import re
    return len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", pdf))


#: Layout checks run in the page laid out for print; each returns a list of problems
PRINT_CHECKS = r"""
(() => {
  const problems = [];
  const main = document.querySelector('main');
  const width = main.getBoundingClientRect().width;
  for (const el of document.querySelectorAll('table, img, figure, pre')) {
    const w = el.getBoundingClientRect().width;
    if (w > width + 1) problems.push(`${el.tagName.toLowerCase()} ${Math.round(w)} px wider than the page (${Math.round(width)} px)`);
  }
  for (const el of document.querySelectorAll('*')) {
    const cs = getComputedStyle(el);
    if ((cs.overflowY === 'auto' || cs.overflowY === 'scroll' || cs.overflowY === 'hidden') && el.scrollHeight > el.clientHeight + 1)
      problems.push(`${el.tagName.toLowerCase()}.${el.className} clips its content (scrolling box)`);
  }
  for (const h of document.querySelectorAll('h1, h2, h3, h4')) {
    const cs = getComputedStyle(h);
    if (cs.breakAfter !== 'avoid' && cs.breakAfter !== 'avoid-page') problems.push(`${h.tagName} "${h.textContent}" may be stranded`);
  }
  for (const tr of document.querySelectorAll('tr')) {
    if (getComputedStyle(tr).breakInside !== 'avoid') { problems.push('table rows may be cut across pages'); break; }
  }
  return problems;
})()
"""

#: Screen checks: every image decoded, every in-page link has its target
SCREEN_CHECKS = r"""
(() => {
  const problems = [];
  for (const img of document.images) if (!img.complete || img.naturalWidth === 0) problems.push(`image "${img.alt}" not shown`);
  for (const a of document.querySelectorAll('a[href^="#"]'))
    if (!document.getElementById(decodeURIComponent(a.getAttribute('href').slice(1)))) problems.push(`link ${a.getAttribute('href')} has no target`);
  const title = document.querySelector('h1');
  if (!title || !title.textContent.trim()) problems.push('no title');
  if (/\(95% CI\s+\)|P = <|\(\s*\)/.test(document.body.innerText)) problems.push('empty brackets or "P = <"');
  return problems;
})()
"""




def browser_or_skip() -> Chromium:
    """A :class:`Chromium` (not started), or a skip saying what is missing; in CI a failure,
    since ``.ci/run`` installs Chromium and ``make test`` installs websocket-client."""
    import pytest
    ci = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
    missing = None
    binary = find_chromium()
    if binary is None:
        missing = "no headless Chromium on PATH (Debian: apt-get install chromium; .ci/run installs it)"
    else:
        try:
            import websocket  # noqa: F401
        except ImportError as e:
            missing = f"websocket-client is not installed ({e}); it is a test extra, `make test` installs it"
    if missing:
        if ci:
            pytest.fail(f"CI must run the report tests in Chromium: {missing}")
        pytest.skip(missing)
    return Chromium(binary)
