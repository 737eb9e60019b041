"""Shared by the provider tests: running a test function under trio's MockClock; what a call does
with a streaming TTS client (an utterance, a barge-in, a fault, a hang-up); checks every provider's
tests make (prompt close, refused connection, the caller's own errors, the key never shown)."""
import functools
from typing import Any, AsyncContextManager, Callable, NamedTuple

import pytest
import trio
import trio.testing

from offhook.providers.base import ULAW_8K, AudioChunk, TTSError, TTSProvider, TTSSession, TTSUtterance


def mock_clock(fn=None, *, autojump: float = 0.005):
    """Run an async test under MockClock(autojump_threshold=autojump): with real loopback sockets
    the clock only jumps once every task has waited `autojump` s of real time, so socket I/O is
    never skipped over, and emulated latencies come out exact."""
    if fn is None:
        return functools.partial(mock_clock, autojump=autojump)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        trio.run(functools.partial(fn, *args, **kwargs), clock=trio.testing.MockClock(autojump_threshold=autojump))
    return wrapper


# ---------------------------------------------------------------- streaming TTS clients
class Said(NamedTuple):
    """One whole utterance as the caller would hear it."""
    utt: Any
    chunks: list[AudioChunk]
    t0: float  # when its first text was sent

    @property
    def audio(self) -> bytes:
        return b"".join(c.audio for c in self.chunks)


async def say(session: TTSSession, *texts: str) -> Said:
    async with session.utterance() as utt:
        t0 = trio.current_time()
        for text in texts:
            await utt.send_text(text)
        await utt.flush()
        chunks = [c async for c in utt]
    return Said(utt, chunks, t0)


async def check_tts_interface(tts: Any, name: str) -> None:
    provider: TTSProvider = tts
    assert provider.name == name
    async with tts.session() as session:
        assert isinstance(session, TTSSession)
        async with session.utterance() as utt:
            assert isinstance(utt, TTSUtterance) and utt.format == ULAW_8K


async def speak_as_the_llm_writes(utt: TTSUtterance, clauses: list[str],
                                  pause: float = 0.5) -> tuple[float, list[tuple[float, bytes]]]:
    """Send a clause every `pause` s (the LLM is slower than the TTS), flush after the last, while
    taking the audio as it comes: (start time, [(time since start, audio)])."""
    got: list[tuple[float, bytes]] = []
    t0 = trio.current_time()

    async def llm() -> None:
        for clause in clauses:
            await utt.send_text(clause)
            await trio.sleep(pause)
        await utt.flush()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(llm)
        async for chunk in utt:
            got.append((trio.current_time() - t0, chunk.audio))
    return t0, got


async def barge_in(session: TTSSession, text: str, *, after_chunks: int = 2,
                   flush: bool = True) -> tuple[Any, list[AudioChunk], float]:
    """The caller talks over the agent after `after_chunks` chunks: the responder's scope is
    cancelled, as the agent's barge-in does. (utterance, chunks heard, when)."""
    heard: list[AudioChunk] = []
    with trio.CancelScope() as turn:
        async with session.utterance() as utt:
            await utt.send_text(text)
            if flush:
                await utt.flush()
            async for chunk in utt:
                heard.append(chunk)
                if len(heard) == after_chunks:
                    barge_at = trio.current_time()
                    turn.cancel()
    assert turn.cancelled_caught
    return utt, heard, barge_at


async def barge_in_before_any_text(session: TTSSession) -> Any:
    with trio.move_on_after(1.0):
        async with session.utterance() as utt:
            async for _ in utt:
                pass
    return utt


async def fail_mid_utterance(session: TTSSession, error: type[TTSError], message: str,
                             text: str) -> tuple[list[AudioChunk], float]:
    """An utterance that the emulator's fault breaks: (chunks heard before, when it failed)."""
    heard: list[AudioChunk] = []
    with pytest.raises(error, match=message) as failure:
        async with session.utterance() as utt:
            t0 = trio.current_time()
            await utt.send_text(text)
            await utt.flush()
            async for chunk in utt:
                heard.append(chunk)
    assert isinstance(failure.value, TTSError)  # what the agent's fallback catches
    return heard, trio.current_time() - t0


async def miss_the_first_audio_deadline(session: TTSSession, error: type[TTSError], message: str,
                                        text: str, deadline: float) -> tuple[Any, float]:
    with pytest.raises(error, match=message):
        async with session.utterance() as utt:
            t0 = trio.current_time()
            await utt.send_text(text)
            async for _ in utt:
                pass
    assert trio.current_time() - t0 == pytest.approx(deadline)
    return utt, t0


async def one_good_call_one_failing(tts: Any, text: str, heard: Callable[[Said], Any]) -> dict[str, Any]:
    """Two calls at once on one provider: {"good": heard(...), "bad": the TTSError}."""
    results: dict[str, Any] = {}
    async with tts.session() as good, tts.session() as bad:
        async def call(name: str, session: TTSSession) -> None:
            try:
                results[name] = heard(await say(session, text))
            except TTSError as exc:
                results[name] = exc

        async with trio.open_nursery() as nursery:
            nursery.start_soon(call, "good", good)
            nursery.start_soon(call, "bad", bad)
    return results


async def hang_up_mid_utterance(emu: Any, tts: Any, text: str) -> None:
    """The caller hangs up (the call's nursery is cancelled) while audio is coming: the socket
    closes within 100 ms."""
    with trio.CancelScope() as call:
        async with tts.session() as session:
            async with session.utterance() as utt:
                await utt.send_text(text)
                await utt.flush()
                async for _ in utt:
                    hangup_at = trio.current_time()
                    call.cancel()
    await assert_closed_promptly(emu, hangup_at)


# ---------------------------------------------------------------- every provider
async def assert_closed_promptly(emu: Any, since: float, within: float = 0.100) -> None:
    conn = emu.connections[0]
    await emu.wait_until(lambda: conn.closed_at is not None)
    assert conn.closed_at - since <= within


async def port_nobody_listens_on(open_emulator: Callable[[], AsyncContextManager[Any]]) -> int:
    """The port an emulator served on, closed again."""
    async with open_emulator() as emu:
        return emu.port


async def refused_at_entry(block: AsyncContextManager[Any], error: type[BaseException],
                           match: str | None = None) -> Any:
    """Entering `block` raises `error` (a refused key, handshake or port); returns the exception."""
    with pytest.raises(error, match=match) as refused:
        async with block:
            pass
    return refused.value


async def assert_own_errors_unwrapped(block: AsyncContextManager[Any]) -> None:
    """An error raised inside the provider's context manager comes out as itself, not in a group."""
    with pytest.raises(KeyError):
        async with block:
            raise KeyError("the caller's own bug")


def assert_key_never_shown(key: str, *texts: str) -> None:
    for text in texts:
        assert key not in text
