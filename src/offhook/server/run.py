"""Serving an OffhookApp with hypercorn's trio worker: the process-wide playback ticker, the app for
the configured mode (echo, or the agent with its providers and the observer), signals and drain."""
from __future__ import annotations

import inspect
import logging
import signal
import socket
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
from typing import AsyncIterator, Callable

import trio
from hypercorn.config import Config as HyperConfig
from hypercorn.trio import serve

from offhook.server import heap, hypercorn_io, hypercorn_ws
from offhook.server.app import OffhookApp
from offhook.server.config import Config
from offhook.server.echo import EchoHandler

hypercorn_ws.install()
hypercorn_io.install()
log = logging.getLogger("offhook.server")


class StartupError(Exception):
    """The server cannot start as configured; the message says why and what to do."""


def hypercorn_config(host: str, port: int, max_message_bytes: int, *, bind: str | None = None) -> HyperConfig:
    """bind (e.g. fd://N for a socket made here) overrides host:port."""
    hc = HyperConfig()
    hc.bind = [bind or (f"[{host}]:{port}" if ":" in host else f"{host}:{port}")]
    hc.websocket_max_message_size = max_message_bytes  # megabyte text frames are refused by the server
    hc.keep_alive_timeout = 75  # Twilio reuses webhook connections
    # hypercorn cuts open connections this long after shutdown starts; ours starts only once the drain
    # has ended every call, so this is a backstop, never the drain itself
    hc.graceful_timeout = 5
    hc.accesslog = None
    return hc


def reuseport_socket(host: str, port: int) -> socket.socket:
    """A bound TCP socket that other processes can bind too (the kernel spreads connections)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    return sock


async def serve_app(app: OffhookApp, host: str = "127.0.0.1", port: int = 0, *, reuse_port: bool = False,
                    shutdown_trigger=None, task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Run until cancelled, or until shutdown_trigger returns. task_status gets the base http URL."""
    # with reuse_port, hypercorn gets the fd of a socket made here and owns it from then on
    bind = f"fd://{reuseport_socket(host, port).detach()}" if reuse_port else None
    hc = hypercorn_config(host, port, app.config.max_message_bytes, bind=bind)
    async with trio.open_nursery() as nursery:
        await nursery.start(app.ticker.run)
        heap.settle()  # everything is imported and set up: see heap.py

        async def _serve(task_status=trio.TASK_STATUS_IGNORED):
            await serve(app, hc, mode="asgi", shutdown_trigger=shutdown_trigger, task_status=task_status)
            nursery.cancel_scope.cancel()  # hypercorn has shut down: so does the ticker
        binds = await nursery.start(_serve)
        task_status.started(binds[0])


# ---------------------------------------------------------------- the app for the configured mode
async def _agent_factory(config: Config, stack: AsyncExitStack):
    try:
        from offhook.agent.factory import agent_handler_factory
        from offhook.providers.factory import build_providers
    except ImportError as e:
        raise StartupError(f"agent mode needs {e.name}, which could not be imported ({e}); "
                           "`--mode echo` runs the diagnostic server without it") from None
    providers = build_providers(config)
    if inspect.isawaitable(providers):
        providers = await providers
    stack.push_async_callback(providers.aclose)
    return await stack.enter_async_context(agent_handler_factory(config, providers))


@asynccontextmanager
async def open_app(config: Config) -> AsyncIterator[OffhookApp]:
    """The app for config.mode with what it needs opened (providers, agent, observer); all closed after."""
    async with AsyncExitStack() as stack:
        factory: Callable = EchoHandler if config.mode == "echo" else await _agent_factory(config, stack)
        app = OffhookApp(config, factory)
        try:
            from offhook.observe.observer import Observer
        except ImportError as e:
            log.warning("monitoring not available (%s): calls are not recorded", e)
        else:
            obs = await stack.enter_async_context(Observer.open(config))
            obs.attach(app)
        yield app


async def serve_until_drained(config: Config, *, reuse_port: bool = False,
                              ready: Callable[[str, OffhookApp], None] | None = None,
                              signals=(signal.SIGTERM, signal.SIGINT)) -> None:
    """Serve until a signal: the first drains (drain_timeout_s), a second hands calls over at once.
    Returns once the drain is over and hypercorn has shut down."""
    async with open_app(config) as app:
        with trio.open_signal_receiver(*signals) as received:
            async with trio.open_nursery() as nursery:
                stopped = trio.Event()

                async def serving(task_status=trio.TASK_STATUS_IGNORED):
                    try:
                        await serve_app(app, config.host, config.port, reuse_port=reuse_port,
                                        shutdown_trigger=app.drained.wait, task_status=task_status)
                    finally:
                        stopped.set()

                async def on_signals():
                    async for sig in received:
                        if app.accepting:
                            log.warning("%s: draining", signal.Signals(sig).name)
                            nursery.start_soon(app.drain, config.drain_timeout_s)
                        else:
                            log.warning("%s again: handing active calls over now", signal.Signals(sig).name)
                            app.drain_now()

                base = await nursery.start(serving)
                nursery.start_soon(on_signals)
                if ready:
                    ready(base, app)
                await stopped.wait()
                nursery.cancel_scope.cancel()
