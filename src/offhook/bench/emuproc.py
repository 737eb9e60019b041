"""The provider emulators as their own process for the load benchmark: the Deepgram STT emulator (the
callers' lines reach it over its `/emulator/board` feed) and the ElevenLabs TTS emulator, at the seed's
latency budget. Kept out of the load generator's process so that neither slows the other's clock
readings (one Python process has one GIL). Prints `EMULATORS <json>` when listening; SIGTERM ends it.

    python -m offhook.bench.emuproc
"""
from __future__ import annotations

import json
import signal

import trio

from offhook.bench.emulated import running_emulators


async def main_async() -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with running_emulators() as spec:
            public = {k: v for k, v in spec.items() if not k.startswith("_")}
            public["board_url"] = spec["stt"]["base_url"] + "/emulator/board"
            print("EMULATORS " + json.dumps(public), flush=True)
            async for _ in signals:
                return


def main() -> int:
    trio.run(main_async)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
