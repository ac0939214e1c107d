"""Headless Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe).

No websocket and no extra package: Chromium reads JSON commands, each ended by a
NUL byte, from fd 3 and writes replies and events to fd 4. `load_page` opens a
file, collects console errors, uncaught exceptions, error log entries and every
network request, measures elements, and takes a full-page screenshot.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--mute-audio",
]


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class PageResult:
    console_errors: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    log_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    rects: list[dict] = field(default_factory=list)
    screenshot: bytes = b""
    device_pixel_ratio: float = 1.0


class Browser:
    def __init__(self, timeout: float = 60.0):
        path = chromium_path()
        if path is None:
            raise RuntimeError("chromium is not installed")
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="sparsetopo-chromium-")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def wire_fds():  # in the child: fd 3 = commands in, fd 4 = replies out
            os.dup2(to_child_r, 3)
            os.dup2(from_child_w, 4)

        self.proc = subprocess.Popen(
            [path, *FLAGS, f"--user-data-dir={self.profile}", "--remote-debugging-pipe", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=wire_fds,
            pass_fds=(3, 4, to_child_r, from_child_w),
            close_fds=True,
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self._buf = b""
        self._next_id = 0
        self.events: list[dict] = []

    # -- protocol ------------------------------------------------------------------
    def _read_message(self, deadline: float) -> dict:
        import select

        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from chromium")
            ready, _, _ = select.select([self._from_child], [], [], left)
            if ready:
                chunk = os.read(self._from_child, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium closed the DevTools pipe")
                self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._next_id += 1
        msg = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_child, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, session: str, timeout: float | None = None) -> dict:
        deadline = time.monotonic() + (timeout or self.timeout)
        for i, ev in enumerate(self.events):
            if ev.get("method") == method and ev.get("sessionId") == session:
                return self.events.pop(i)
        while True:
            ev = self._read_message(deadline)
            if ev.get("method") == method and ev.get("sessionId") == session:
                return ev
            self.events.append(ev)

    def drain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        try:
            while True:
                self.events.append(self._read_message(deadline))
        except TimeoutError:
            pass

    # -- one page ------------------------------------------------------------------
    def load_page(self, url: str, selector: str, width: int = 1200) -> PageResult:
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable", session=session)
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False},
            session,
        )
        self.events.clear()
        self.send("Page.navigate", {"url": url}, session)
        self.wait_event("Page.loadEventFired", session)
        self.drain(1.0)  # late console messages and requests
        result = PageResult()
        for ev in self.events:
            if ev.get("sessionId") != session:
                continue
            p = ev.get("params", {})
            m = ev.get("method")
            if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                result.console_errors.append(
                    " ".join(str(a.get("value", a.get("description"))) for a in p.get("args", []))
                )
            elif m == "Runtime.exceptionThrown":
                result.exceptions.append(json.dumps(p.get("exceptionDetails", {}))[:500])
            elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                result.log_errors.append(p["entry"].get("text", ""))
            elif m == "Network.loadingFailed":
                result.log_errors.append(f"loading failed: {p.get('errorText')}")
            elif m == "Network.requestWillBeSent":
                result.requests.append(p.get("request", {}).get("url", ""))
        js = (
            "JSON.stringify(Array.from(document.querySelectorAll(SELECTOR)).map(e => {const r = e.getBoundingClientRect();"
            " const img = e.querySelector('img'); return {name: e.dataset.plot, x: r.left + scrollX, y: r.top + scrollY,"
            " width: r.width, height: r.height, loaded: !!(img && img.complete && img.naturalWidth > 0)};}))"
        ).replace("SELECTOR", json.dumps(selector))
        js = js
        value = self.send("Runtime.evaluate", {"expression": js, "returnByValue": True}, session)["result"]["value"]
        result.rects = json.loads(value)
        result.device_pixel_ratio = self.send(
            "Runtime.evaluate", {"expression": "devicePixelRatio", "returnByValue": True}, session
        )["result"]["value"]
        shot = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session)
        result.screenshot = base64.b64decode(shot["data"])
        self.send("Target.closeTarget", {"targetId": target})
        return result

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except Exception:  # noqa: BLE001 - it may be gone already
            pass
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_child, self._from_child):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
