"""`offhook serve`: the call server Twilio connects to.

    offhook serve [--host 127.0.0.1] [--port 8080] [--config offhook.toml] [--mode agent|echo]
                  [--insecure-dev] [--workers N]

Configuration comes from the environment and the optional TOML file (see offhook.server.config);
flags win. A configuration that cannot work is refused at start with one line saying why (exit 2).
SIGTERM drains: no new calls, active calls go on for up to drain_timeout_s, then voicemail; exit 0.
"""
from __future__ import annotations

import argparse
import logging
import sys

import trio

from offhook.server.config import Config, ConfigError

log = logging.getLogger("offhook.server")

INSECURE_BANNER = """\
****************************************************************************************
*  WARNING: Twilio signature validation is OFF (--insecure-dev / OFFHOOK_VALIDATE_SIGNATURES=0).
*  Anyone who can reach this port can place calls through it and spend your provider credit.
*  Use this only on a private machine for development; never expose it to the internet.
****************************************************************************************"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", help="address to listen on (default 127.0.0.1, env OFFHOOK_HOST)")
    p.add_argument("--port", type=int, help="port (default 8080, env OFFHOOK_PORT)")
    p.add_argument("--config", metavar="FILE", help="TOML file with an [offhook] table")
    p.add_argument("--mode", choices=["agent", "echo"],
                   help="agent (default) answers with the voice agent; echo is a diagnostic that plays "
                        "a tone and repeats what it hears")
    p.add_argument("--insecure-dev", action="store_true",
                   help="do not check X-Twilio-Signature (local development only)")
    p.add_argument("--workers", type=int, help="processes sharing the port via SO_REUSEPORT (default 1)")
    p.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)  # set by the supervisor
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])


def load_config(args: argparse.Namespace) -> Config:
    return Config.load(args.config, host=args.host, port=args.port, mode=args.mode, workers=args.workers,
                       validate_signatures=False if args.insecure_dev else None)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=getattr(logging, args.log_level), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args)
    except ConfigError as e:
        print(f"offhook serve: {e}", file=sys.stderr)
        return 2
    if args.worker_index is None and not config.validate_signatures:
        print(INSECURE_BANNER, file=sys.stderr, flush=True)
    if args.worker_index is None and config.workers > 1:
        from offhook.server.workers import supervise
        return supervise(args, config)
    return serve_one(config, args.worker_index)


def serve_one(config: Config, worker_index: int | None) -> int:
    from offhook.server.run import StartupError, serve_until_drained

    if worker_index is not None:
        # one of several processes on the same port: its own name in the call store and /healthz
        import socket
        config.server_id = f"{config.server_id or socket.gethostname()}-w{worker_index}"

    started = False

    def ready(base: str, app) -> None:
        nonlocal started
        started = True
        who = f"worker {worker_index} " if worker_index is not None else ""
        print(f"offhook: {who}listening on {base} (mode {config.mode}, id {app.server_id})", flush=True)

    try:
        trio.run(lambda: serve_until_drained(config, reuse_port=worker_index is not None, ready=ready))
    except BaseException as e:
        leaf = _single(e)
        if started or not isinstance(leaf, (StartupError, ValueError, OSError)):
            raise
        # Start-up refused: a setting or file that cannot work (ConfigError, ProfileError and the
        # providers' config errors are ValueErrors), or the port. One line, no traceback.
        if isinstance(leaf, OSError) and not isinstance(leaf, (FileNotFoundError, PermissionError)):
            print(f"offhook serve: cannot listen on {config.host}:{config.port}: {leaf.strerror or leaf}",
                  file=sys.stderr)
        else:
            print(f"offhook serve: {leaf}", file=sys.stderr)
        return 2
    print("offhook: stopped", flush=True)
    return 0


def _single(e: BaseException) -> BaseException:
    """The one real error inside nested single-exception groups (trio wraps errors from nurseries)."""
    while isinstance(e, BaseExceptionGroup) and len(e.exceptions) == 1:
        e = e.exceptions[0]
    return e
