"""Sampled call recordings: a stereo WAV (caller left, agent right) on one timeline, as heard.

The edge calls the recorder inline on the hot path, so a frame costs one buffered file write: each
side is spooled as raw mu-law (1 byte per sample, 8 kHz) at its position on the call clock, gaps
filled with mu-law silence, into data_dir/recordings/spool. Memory stays bounded whatever the call
length (a 64 KiB write buffer per side plus the agent frames not yet played). Only when a call is
kept is the spool decoded to 16-bit PCM and interleaved into the WAV, off the trio thread.

Agent frames are held until their scheduled play time has passed, because a `clear` drops
everything scheduled after it: the caller never heard that audio, so neither does the recording
(the frame playing at the clear is cut at the clear's instant).
"""
from __future__ import annotations

import hashlib
import logging
import os
import wave
from collections import deque
from pathlib import Path

import numpy as np

from offhook.audio import ulaw_decode
from offhook.observe.measures import caller_hung_up, is_error, HANDOFF_REASONS
from offhook.observe.record import CallRecord

log = logging.getLogger("offhook.recording")

RATE = 8000
FRAME = 160
SILENCE = 0xFF               # mu-law zero
RESYNC = RATE // 2           # caller audio this far behind its arrival time means frames were lost
MAX_PENDING = 500            # agent frames (10 s) held for a possible clear; far beyond any pacer lead
SHORT_HANGUP_S = 30.0
_BUF = 64 * 1024


def keep_decision(rec: CallRecord, sample_rate: float) -> str | None:
    """Why this call's recording is kept, or None to discard it. The sampled fraction is decided by
    a hash of the call sid, so it is the same on every server and reproducible in tests."""
    if rec.end_reason in HANDOFF_REASONS:
        return "handoff"
    if is_error(rec.end_reason):
        return "error"
    if caller_hung_up(rec) and rec.duration is not None and rec.duration < SHORT_HANGUP_S:
        return "short_hangup"
    if sample_fraction(rec.call_sid) < sample_rate:
        return "sampled"
    return None


def sample_fraction(call_sid: str) -> float:
    """A uniform number in [0, 1) from the sid."""
    return int.from_bytes(hashlib.sha256(call_sid.encode()).digest()[:8], "big") / 2**64


class _Track:
    """One channel as raw mu-law at sample positions, silence in the gaps."""

    def __init__(self, path: Path):
        self.path = path
        self.end = 0             # samples written
        self.failed = False      # disk trouble: this recording is lost, the call goes on
        self._f = None

    def write(self, pos: int, data: bytes) -> None:
        if pos < self.end:       # rounding overlap with the previous frame: keep the earlier audio
            data = data[self.end - pos:]
            pos = self.end
        if not data or self.failed:
            return
        try:
            if self._f is None:
                self._f = open(self.path, "wb", buffering=_BUF)
            if pos > self.end:
                self._f.write(bytes([SILENCE]) * (pos - self.end))
            self._f.write(data)
        except OSError as e:
            self.failed = True
            log.warning("recording %s failed, the call goes on unrecorded: %s", self.path.name, e)
            self._close_quietly()
            return
        self.end = pos + len(data)

    def _close_quietly(self) -> None:
        try:
            self.close()
        except OSError as e:  # the final flush failed: the spool is incomplete
            self.failed = True
            self._f = None
            log.warning("recording %s failed at close: %s", self.path.name, e)

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None

    def read(self, start: int, n: int) -> bytes:
        if start >= self.end:
            return b""
        with open(self.path, "rb") as f:
            f.seek(start)
            return f.read(n)

    def remove(self) -> None:
        self.close()
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass


class CallRecorder:
    def __init__(self, spool_dir: str | os.PathLike, call_sid: str):
        spool = Path(spool_dir)
        spool.mkdir(parents=True, exist_ok=True)
        self.call_sid = call_sid
        self._caller = _Track(spool / f"{call_sid}.caller.ulaw")
        self._agent = _Track(spool / f"{call_sid}.agent.ulaw")
        self._pending: deque[tuple[int, bytes]] = deque()  # (sample position, frame) not yet played
        self._caller_pos: int | None = None
        self.clears = 0
        self.agent_frames_dropped = 0
        self.closed = False

    # ---------------------------------------------------------------- the edge's calls (hot path)
    def caller(self, frame: bytes, t: float) -> None:
        """An inbound in-order frame that arrived at t (call clock): its audio ended at about t."""
        if self.closed:
            return
        arrived = int(round(t * RATE)) - len(frame)
        pos = self._caller_pos
        if pos is None or arrived - pos > RESYNC:
            pos = max(arrived, 0 if pos is None else pos)
        self._caller.write(pos, frame)
        self._caller_pos = pos + len(frame)
        self._flush_agent(int(round(t * RATE)))

    def agent(self, frame: bytes, play_at: float) -> None:
        """An outbound frame the pacer sent, scheduled to play at play_at (call clock)."""
        if self.closed:
            return
        self._pending.append((int(round(play_at * RATE)), frame))
        if len(self._pending) > MAX_PENDING:
            pos, f = self._pending.popleft()
            self._agent.write(pos, f)

    def clear(self, t: float) -> None:
        """The pacer cleared at t: agent audio scheduled from t on was never heard."""
        if self.closed:
            return
        self.clears += 1
        cut = int(round(t * RATE))
        while self._pending and self._pending[-1][0] >= cut:
            self._pending.pop()
            self.agent_frames_dropped += 1
        if self._pending:
            pos, f = self._pending[-1]
            if pos + len(f) > cut:
                self._pending[-1] = (pos, f[: cut - pos])

    def _flush_agent(self, now: int) -> None:
        pending = self._pending
        while pending and pending[0][0] + len(pending[0][1]) <= now:
            pos, f = pending.popleft()
            self._agent.write(pos, f)

    # ---------------------------------------------------------------- end of call
    def close(self) -> None:
        """Stop recording: everything still pending was scheduled before any clear, so it played."""
        if self.closed:
            return
        while self._pending:
            pos, f = self._pending.popleft()
            self._agent.write(pos, f)
        self._caller._close_quietly()
        self._agent._close_quietly()
        self.closed = True

    @property
    def failed(self) -> bool:
        return self._caller.failed or self._agent.failed

    @property
    def seconds(self) -> float:
        return max(self._caller.end, self._agent.end) / RATE

    def discard(self) -> None:
        self.close()
        self._caller.remove()
        self._agent.remove()

    def save(self, dest: str | os.PathLike) -> None:
        """Write the stereo WAV (blocking: run it in a worker thread) and remove the spool."""
        self.close()
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_suffix(".wav.part")
        total = max(self._caller.end, self._agent.end)
        step = RATE * 10
        silence = bytes([SILENCE]) * step
        try:
            with wave.open(str(tmp), "wb") as w:
                w.setnchannels(2)
                w.setsampwidth(2)
                w.setframerate(RATE)
                for start in range(0, total, step):
                    n = min(step, total - start)
                    left = self._caller.read(start, n)
                    right = self._agent.read(start, n)
                    pcm = np.empty((n, 2), dtype="<i2")
                    pcm[:, 0] = np.frombuffer(ulaw_decode(left + silence[: n - len(left)]), dtype="<i2")
                    pcm[:, 1] = np.frombuffer(ulaw_decode(right + silence[: n - len(right)]), dtype="<i2")
                    w.writeframes(pcm.tobytes())
            os.replace(tmp, dest)
        finally:
            if tmp.exists():
                tmp.unlink()
            self._caller.remove()
            self._agent.remove()
