"""Headless Chromium for page tests, driven over the DevTools protocol (trio + trio-websocket).

    async with headless_chromium() as browser:
        page = await browser.open(url)          # waits for the load event
        value = await page.evaluate("document.title")
        page.errors                              # console errors, exceptions, failed loads

`chromium_binary()` is None where Debian's chromium is not installed; tests skip with SKIP_REASON.
"""
from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
import tempfile
from contextlib import asynccontextmanager

import trio
from trio_websocket import open_websocket_url

SKIP_REASON = "no chromium binary (`apt-get install chromium`; .ci/run does) to run the dashboard page tests"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--disable-default-apps", "--mute-audio", "--remote-debugging-port=0"]


def chromium_binary() -> str | None:
    for name in ("/usr/bin/chromium", "chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


class Page:
    def __init__(self, browser: "Browser", session: str):
        self.browser = browser
        self.session = session
        self.errors: list[str] = []
        self.loaded = trio.Event()

    def _on_event(self, method: str, params: dict) -> None:
        if method == "Page.loadEventFired":
            self.loaded.set()
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            self.errors.append("console: " + " ".join(str(a.get("value", a.get("description", "")))
                                                      for a in params.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            d = params.get("exceptionDetails", {})
            self.errors.append("exception: " + str(d.get("exception", {}).get("description", d.get("text"))))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            e = params["entry"]
            self.errors.append(f"log: {e.get('text')} {e.get('url', '')}")

    async def send(self, method: str, **params) -> dict:
        return await self.browser.send(method, params, session=self.session)

    async def evaluate(self, expression: str):
        r = await self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"page script failed: {r['exceptionDetails']}")
        return r["result"].get("value")


class Browser:
    def __init__(self, ws):
        self.ws = ws
        self._ids = itertools.count(1)
        self._waiting: dict[int, trio.MemorySendChannel] = {}
        self.pages: dict[str, Page] = {}

    async def _reader(self) -> None:
        while True:
            msg = json.loads(await self.ws.get_message())
            if "id" in msg:
                ch = self._waiting.pop(msg["id"], None)
                if ch is not None:
                    ch.send_nowait(msg)
            elif (page := self.pages.get(msg.get("sessionId", ""))) is not None:
                page._on_event(msg["method"], msg.get("params", {}))

    async def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        i = next(self._ids)
        send, recv = trio.open_memory_channel(1)
        self._waiting[i] = send
        msg = {"id": i, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        await self.ws.send_message(json.dumps(msg))
        reply = await recv.receive()
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    async def open(self, url: str, timeout: float = 30.0) -> Page:
        target = (await self.send("Target.createTarget", {"url": "about:blank"}))["targetId"]
        session = (await self.send("Target.attachToTarget", {"targetId": target, "flatten": True}))["sessionId"]
        page = self.pages[session] = Page(self, session)
        for domain in ("Page", "Runtime", "Log"):
            await page.send(f"{domain}.enable")
        with trio.fail_after(timeout):
            await page.send("Page.navigate", url=url)
            await page.loaded.wait()
        return page


@asynccontextmanager
async def headless_chromium(timeout: float = 30.0):
    binary = chromium_binary()
    if binary is None:
        raise RuntimeError(SKIP_REASON)
    profile = tempfile.mkdtemp(prefix="offhook-chromium-")
    proc = await trio.lowlevel.open_process([binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        url, buf = None, b""
        with trio.fail_after(timeout):
            while url is None:
                chunk = await proc.stderr.receive_some()
                if not chunk:
                    tail = buf.decode(errors="replace")[-1000:]
                    raise RuntimeError(f"chromium exited before DevTools came up: {tail}")
                buf += chunk
                m = re.search(rb"DevTools listening on (ws://\S+)", buf)
                url = m.group(1).decode() if m else None

        async def drain_stderr() -> None:  # keep the pipe from filling up
            while await proc.stderr.receive_some():
                pass
        async with trio.open_nursery() as nursery:
            nursery.start_soon(drain_stderr)
            async with open_websocket_url(url, max_message_size=64 * 1024 * 1024) as ws:
                browser = Browser(ws)
                nursery.start_soon(browser._reader)
                yield browser
                nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            if proc.returncode is None:
                proc.terminate()
                with trio.move_on_after(5):
                    await proc.wait()
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
            shutil.rmtree(profile, ignore_errors=True)
