"""The consumer side every streaming TTS utterance shares: audio chunks handed over from the
connection's reader task, time to first audio, and the two deadlines, all on trio.current_time():

    first_audio_timeout  (None = off) from the first send_text to the first audio chunk;
    stall_timeout        after flush(), the longest wait for the next message of the utterance,
                         first audio included (a hang).

A vendor's utterance subclasses StreamedUtterance, calls `_text_sent()`/`_flush_sent()` as its
producer side goes, and its reader calls `_deliver()`, `_on_final()` and `_fail()`.
"""
from __future__ import annotations

import math

import trio

from offhook.providers.base import ULAW_8K, AudioChunk, AudioFormat, TTSError
from offhook.providers.common import again


class StreamedUtterance:
    format: AudioFormat = ULAW_8K
    vendor = "TTS"
    timeout_error: type[TTSError] = TTSError

    def __init__(self, first_audio_timeout: float | None, stall_timeout: float | None) -> None:
        self.characters = 0
        self.first_audio_latency: float | None = None
        self._first_audio_timeout = first_audio_timeout
        self._stall_timeout = stall_timeout
        self._send_ch, self._recv_ch = trio.open_memory_channel[AudioChunk](math.inf)
        self._first_text_at: float | None = None
        self._flushed_at: float | None = None
        self._last_rx_at: float | None = None
        self._final = False
        self._failure: TTSError | None = None
        self._wait_scope: trio.CancelScope | None = None

    # -------------------------------------------------------- producer side bookkeeping
    def _text_sent(self) -> None:
        if self._first_text_at is None:
            self._first_text_at = trio.current_time()
            self._refresh()

    def _flush_sent(self) -> None:
        self._flushed_at = trio.current_time()
        self._refresh()

    def _end_empty(self) -> None:
        """flush() with nothing said: the utterance ends at once, without audio."""
        self._final = True
        self._send_ch.close()

    # -------------------------------------------------------- consumer side
    def __aiter__(self) -> "StreamedUtterance":
        return self

    async def __anext__(self) -> AudioChunk:
        while True:
            with trio.CancelScope(deadline=self._deadline()) as scope:
                self._wait_scope = scope
                try:
                    return await self._recv_ch.receive()
                except trio.EndOfChannel:
                    if self._failure is not None:
                        raise again(self._failure) from None
                    raise StopAsyncIteration from None
                finally:
                    self._wait_scope = None
            if trio.current_time() >= self._deadline():
                self._timed_out()

    def _deadline(self) -> float:
        deadline = math.inf
        if self.first_audio_latency is None and self._first_audio_timeout is not None \
                and self._first_text_at is not None:
            deadline = self._first_text_at + self._first_audio_timeout
        if self._flushed_at is not None and self._stall_timeout is not None and not self._final:
            since = max(self._flushed_at, self._last_rx_at or -math.inf)
            deadline = min(deadline, since + self._stall_timeout)
        return deadline

    def _refresh(self) -> None:
        if self._wait_scope is not None:
            self._wait_scope.deadline = self._deadline()

    def _timed_out(self) -> None:
        if self.first_audio_latency is None and self._first_audio_timeout is not None \
                and self._first_text_at is not None \
                and trio.current_time() >= self._first_text_at + self._first_audio_timeout:
            # The utterance is abandoned (the vendor's abort on exit); the connection may be fine.
            err = self.timeout_error(f"no audio from {self.vendor} within {self._first_audio_timeout:g} s "
                                     f"of the first text")
        else:
            err = self.timeout_error(f"{self.vendor} audio stalled: nothing for {self._stall_timeout:g} s after flush")
            self._stalled(err)
        self._fail(err)
        raise again(err)

    def _stalled(self, err: TTSError) -> None:
        """A half-dead socket: the subclass drops its connection so the next utterance gets a new one."""

    # -------------------------------------------------------- fed by the session's reader
    def _deliver(self, chunk: AudioChunk, *, audio: bool = True) -> None:
        now = trio.current_time()
        self._last_rx_at = now
        if self.first_audio_latency is None and audio:
            self.first_audio_latency = now - (self._first_text_at if self._first_text_at is not None else now)
        try:
            self._send_ch.send_nowait(chunk)
        except trio.ClosedResourceError:
            pass
        self._refresh()

    def _on_final(self) -> None:
        self._final = True
        self._send_ch.close()
        self._refresh()

    def _fail(self, err: TTSError) -> None:
        if not self._final and self._failure is None:
            self._failure = err
            self._send_ch.close()
