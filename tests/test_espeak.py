"""eSpeak NG offline TTS, for real: the audio a caller would hear, its timing structure, cancellation."""
import subprocess
import sys
import threading

import numpy as np
import pytest
import trio

pytest.importorskip("espeakng_loader")

from offhook.audio import pcm_level_db  # noqa: E402
from offhook.providers.base import TTSError, TTSSession, TTSUtterance  # noqa: E402
from offhook.providers.espeak import ESpeakTTS, native_rate, synthesize  # noqa: E402

SENTENCE = "Thanks for calling Bella's Salon. We're open from nine until six, Monday to Saturday."
# ~20 minutes of speech if it were ever spoken in full (~56 ms per character).
LONG = "This is a long sentence that keeps the speech engine busy for quite a while. " * 280


async def speak(tts, pieces, **_):
    """Send pieces as an LLM would, read everything; returns (utterance, chunks)."""
    async with tts.session() as session, session.utterance() as utt:
        for p in pieces:
            await utt.send_text(p)
        await utt.flush()
        chunks = [c async for c in utt]
    return utt, chunks


def alignment(chunks):
    return [a for c in chunks for a in (c.alignment or ())]


def test_sentence_is_audible_speech_of_plausible_length_with_word_alignment():
    tts = ESpeakTTS()

    async def main():
        utt, chunks = await speak(tts, [SENTENCE])
        assert isinstance(utt, TTSUtterance)
        return utt, chunks

    utt, chunks = trio.run(main)
    assert utt.format.encoding == "pcm16" and utt.format.sample_rate == native_rate() == 22050
    audio = b"".join(c.audio for c in chunks)
    seconds = len(audio) / 2 / utt.format.sample_rate
    assert 0.040 * len(SENTENCE) <= seconds <= 0.120 * len(SENTENCE)
    assert pcm_level_db(audio) > -35  # speech, not silence
    assert len(chunks) > 10 and all(c.audio for c in chunks)  # streamed in ~60 ms pieces
    assert utt.characters == len(SENTENCE)
    assert utt.first_audio_latency is not None and utt.first_audio_latency >= 0

    words = alignment(chunks)
    assert "".join(w for w, _, _ in words) == SENTENCE
    assert [w.strip(" ,.") for w, _, _ in words][:4] == ["Thanks", "for", "calling", "Bella's"]
    starts = [s for _, s, _ in words]
    assert starts == sorted(starts) and starts[0] == 0
    assert all(s <= e for _, s, e in words)
    assert words[-1][2] == pytest.approx(seconds * 1000, abs=1)
    # Each word's entry arrives no later than the chunk that finishes it.
    heard_ms = 0.0
    for c in chunks:
        heard_ms += len(c.audio) / 2 / 22.05
        for _, _, end in c.alignment or ():
            assert end <= heard_ms + 0.01


def test_text_sent_in_fragments_is_spoken_as_whole_words():
    tts = ESpeakTTS()
    pieces = ["Sure, we", "'re open un", "til five", ". A trim is $3.", "50. Anything else?"]
    _, chunks = trio.run(speak, tts, pieces)
    words = [w for w, _, _ in alignment(chunks)]
    assert "".join(words) == "".join(pieces)
    assert " we're " in words and "until " in words  # fragments were not spoken on their own
    _, whole = trio.run(speak, tts, ["".join(pieces)])
    # Spoken at clause boundaries: the same words, about the same length as one piece of text.
    assert [w.strip() for w, _, _ in alignment(whole)] == [w.strip() for w in words]
    ratio = sum(len(c.audio) for c in chunks) / sum(len(c.audio) for c in whole)
    assert 0.8 < ratio < 1.25


def test_chunks_reach_trio_while_synthesis_is_still_running():
    tts = ESpeakTTS()
    text = LONG[: len(LONG) // 10]  # ~2 minutes of speech: ~0.4 s of synthesis

    async def main():
        async with tts.session() as session, session.utterance() as utt:
            await utt.send_text(text)
            await utt.flush()
            seen = []
            async for c in utt:
                if not seen:
                    made_at_first_chunk = utt.synthesized_seconds
                seen.append(c)
            total = sum(len(c.audio) for c in seen) / 2 / 22050
            return made_at_first_chunk, total

    made, total = trio.run(main)
    assert total > 60
    assert made < total / 2


def test_cancelling_the_scope_stops_synthesis_and_frees_the_engine():
    tts = ESpeakTTS()

    async def main():
        async with tts.session() as session:
            with trio.CancelScope() as scope:
                async with session.utterance() as long_utt:
                    await long_utt.send_text(LONG)
                    await long_utt.flush()
                    async for _ in long_utt:
                        scope.cancel()  # barge-in after the first chunk
            assert scope.cancelled_caught
            # The engine is shared and FIFO: this one only finishes after the long job has ended.
            async with session.utterance() as next_utt:
                await next_utt.send_text("How can I help?")
                await next_utt.flush()
                after = [c async for c in next_utt]
            return long_utt.synthesized_seconds, after

    made, after = trio.run(main)
    assert made < 60  # of ~20 minutes: eSpeak stopped at a callback soon after the cancel
    assert 0.5 < sum(len(c.audio) for c in after) / 2 / 22050 < 3


def envelope(pcm, rate):
    x = np.frombuffer(pcm, "<i2").astype(float)
    n = rate // 50
    return np.sqrt((x[: len(x) // n * n].reshape(-1, n) ** 2).mean(axis=1))


def same_speech(got, ref, rate=22050):
    """eSpeak carries a little state from one synthesis to the next (pitch flutter), so the same
    text never comes out byte-identical twice; it does come out the same length to within a few
    samples with the same 20 ms loudness contour (correlation >= 0.95 measured, after a switch of
    voice too). Another text, voice or speed, or a chunk lost or stolen, breaks one or the other
    (correlation: other text ~0, other voice ~0.7, 6% faster ~-0.1, one 60 ms chunk swapped 0.88)."""
    a, b = envelope(got, rate), envelope(ref, rate)
    n = min(len(a), len(b))
    return abs(len(got) / len(ref) - 1) < 0.01 and np.corrcoef(a[:n], b[:n])[0, 1] > 0.93


def test_concurrent_utterances_from_two_tasks_and_a_thread_do_not_corrupt_each_other():
    a = ESpeakTTS("en-us", wpm=160)
    b = ESpeakTTS("en", wpm=230, pitch=70)
    a_text = ["Your appointment is on Tuesday at three. ", "See you then!"]
    b_text = ["The total comes to forty five dollars, ", "payable at the desk."]
    thread_text = "My number is eight five oh six eight seven two."

    async def solo():
        return (await speak(a, a_text))[1], (await speak(b, b_text))[1]

    ref_a, ref_b = trio.run(solo)
    ref_thread = synthesize(thread_text, 8000)

    async def together():
        got = {}

        async def run(name, tts, text):
            got[name] = (await speak(tts, text))[1]

        async with trio.open_nursery() as n:
            for i in range(3):
                n.start_soon(run, f"a{i}", a, a_text)
                n.start_soon(run, f"b{i}", b, b_text)
            n.start_soon(trio.to_thread.run_sync, lambda: got.setdefault("t", synthesize(thread_text, 8000)))
        return got

    got = trio.run(together)
    joined = lambda chunks: b"".join(c.audio for c in chunks)  # noqa: E731
    assert not same_speech(joined(ref_a), joined(ref_b))
    for i in range(3):
        assert same_speech(joined(got[f"a{i}"]), joined(ref_a))
        assert same_speech(joined(got[f"b{i}"]), joined(ref_b))
        assert [w for w, _, _ in alignment(got[f"a{i}"])] == [w for w, _, _ in alignment(ref_a)]
        assert "".join(w for w, _, _ in alignment(got[f"b{i}"])) == "".join(b_text)
    assert same_speech(got["t"], ref_thread, 8000)


def test_synthesize_resamples_to_the_requested_rate():
    text = "What are your opening hours?"
    native = synthesize(text, 22050)
    seconds = len(native) / 2 / 22050
    assert 0.040 * len(text) <= seconds <= 0.120 * len(text)
    for rate in (8000, 16000, 24000):
        pcm = synthesize(text, rate)
        assert len(pcm) / 2 / rate == pytest.approx(seconds, abs=0.015)
        assert pcm_level_db(pcm) == pytest.approx(pcm_level_db(native), abs=1.5)
    assert synthesize("   ", 8000) == b""


def test_synthesize_from_many_threads_at_once():
    text = "Is there parking nearby?"
    ref = synthesize(text, 8000)
    out = []
    threads = [threading.Thread(target=lambda: out.append(synthesize(text, 8000))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(out) == 6 and all(same_speech(o, ref, 8000) for o in out)


def test_errors_are_clear():
    async def main():
        with pytest.raises(TTSError, match="unknown eSpeak voice 'xx-nope'"):
            async with ESpeakTTS("xx-nope").session():
                pass
        async with ESpeakTTS().session() as session:
            assert isinstance(session, TTSSession)
            async with session.utterance() as utt:
                await utt.flush()
                assert [c async for c in utt] == []  # nothing said, nothing to hear
                with pytest.raises(TTSError, match="after flush"):
                    await utt.send_text("too late")
            # one utterance's misuse does not break the next
            async with session.utterance() as utt:
                await utt.send_text("Still here.")
                await utt.flush()
                assert sum(len(c.audio) for c in [c async for c in utt]) > 0

    trio.run(main)
    with pytest.raises(ValueError, match="wpm"):
        ESpeakTTS(wpm=5)


def test_missing_extra_names_the_install_command():
    code = ("import sys; sys.modules['espeakng_loader'] = None\n"
            "try:\n    import offhook.providers.espeak\n"
            "except ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "pip install 'offhook[offline]'" in out.stdout
