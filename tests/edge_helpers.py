"""Start the real server in-process (trio, hypercorn, loopback port 0) for tests."""
from __future__ import annotations

from contextlib import asynccontextmanager

import trio

from offhook.server.app import OffhookApp
from offhook.server.config import Config
from offhook.server.echo import EchoHandler
from offhook.server.run import serve_app

TOKEN = "test-auth-token-0123456789abcdef"


@asynccontextmanager
async def running_server(handler_factory=None, **cfg):
    cfg.setdefault("twilio_auth_token", TOKEN)
    config = Config.load(env={}, **cfg)
    app = OffhookApp(config, handler_factory or (lambda call: EchoHandler(call)))
    async with trio.open_nursery() as nursery:
        base = await nursery.start(serve_app, app, "127.0.0.1", 0)
        app.base_http = base
        app.base_ws = base.replace("http://", "ws://")
        yield app
        nursery.cancel_scope.cancel()
