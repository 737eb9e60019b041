"""`--mode echo`: a diagnostic call handler, not the agent. It plays a greeting tone, then plays
back each thing the caller says once they stop — enough to check audio both ways, pacing, marks
and `clear` on a real Twilio number before any provider is configured."""
from __future__ import annotations

import math

import trio

from offhook.audio import InboundPath, OutboundPath, ulaw_encode
from offhook.server.media import MediaCall


def beep(ms: int = 400, freq: float = 660.0, rate: int = 8000) -> bytes:
    n = rate * ms // 1000
    pcm = b"".join(int(8000 * math.sin(2 * math.pi * freq * i / rate)).to_bytes(2, "little", signed=True)
                   for i in range(n))
    return ulaw_encode(pcm)


class EchoHandler:
    def __init__(self, call: MediaCall, greeting: bytes | None = None, max_echo_s: float = 10.0):
        self.inbound = InboundPath(stt_rate=8000, stt_encoding="ulaw")
        self.out = OutboundPath(src_rate=8000, src_encoding="ulaw")
        self.greeting = greeting if greeting is not None else beep()
        self.heard: list[bytes] = []
        self.max_frames = int(max_echo_s * 50)
        self.echoes = 0

    async def run(self, call: MediaCall) -> None:
        call.pacer.start_utterance("greeting")
        call.pacer.enqueue(self.out.process(self.greeting) + self.out.flush())
        call.pacer.end_utterance()
        await trio.sleep_forever()  # the call ends when the caller hangs up (or presses #)

    async def on_audio(self, call: MediaCall, frame: bytes) -> None:
        _, _, _ = self.inbound.process(frame)
        vad = self.inbound.vad
        if vad.speaking or vad.transition == -1:
            if len(self.heard) < self.max_frames:
                self.heard.append(frame)
        if vad.transition == -1 and self.heard:
            self.echoes += 1
            call.pacer.start_utterance(f"echo {self.echoes}")
            call.pacer.enqueue(self.heard)
            call.pacer.end_utterance()
            self.heard = []
        elif vad.transition == 1 and call.pacer.playing():
            await call.pacer.clear()  # caller talks over the echo: stop it

    def on_mark(self, call: MediaCall, name: str) -> None:
        pass

    def on_dtmf(self, call: MediaCall, digit: str) -> None:
        if digit == "#":
            call.end("agent_end", "agent")
