"""Serving an OffhookApp with hypercorn's trio worker, plus the process-wide playback ticker."""
from __future__ import annotations

from functools import partial

import trio
from hypercorn.config import Config as HyperConfig
from hypercorn.trio import serve

from offhook.server import hypercorn_ws
from offhook.server.app import OffhookApp

hypercorn_ws.install()


def hypercorn_config(host: str, port: int, max_message_bytes: int) -> HyperConfig:
    hc = HyperConfig()
    hc.bind = [f"{host}:{port}"]
    hc.websocket_max_message_size = max_message_bytes  # megabyte text frames are refused by the server
    hc.keep_alive_timeout = 75  # Twilio reuses webhook connections
    hc.graceful_timeout = 5
    hc.accesslog = None
    return hc


async def serve_app(app: OffhookApp, host: str = "127.0.0.1", port: int = 0, *,
                    shutdown_trigger=None, task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Run until cancelled (or shutdown_trigger returns). task_status gets the base http URL."""
    hc = hypercorn_config(host, port, app.config.max_message_bytes)
    async with trio.open_nursery() as nursery:
        await nursery.start(app.ticker.run)
        binds = await nursery.start(partial(serve, app, hc, mode="asgi", shutdown_trigger=shutdown_trigger))
        task_status.started(binds[0])
        if shutdown_trigger is not None:
            await trio.sleep_forever()
