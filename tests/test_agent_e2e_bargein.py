"""Barge-in end to end: the caller talks over the agent at several points of a reply; a
backchannel, a cough and a noise burst (aperiodic: never a barge-in), a hum that turns out to be nothing."""
import wave

import numpy as np
import pytest

from agent_helpers import agent_rig, heard_after, heard_spans, mock_clock
from offhook.audio import ulaw_decode, ulaw_encode, ulaw_level_db
from offhook.sim.emulators.plan import LatencyProfile
from offhook.sim.voice import synthetic_voice

pytestmark = pytest.mark.timeout(60)

GREETING = {"wait_for_agent": {"quiet": 0.5, "timeout": 10}}
AFTER = {"wait_for_agent": {"quiet": 0.6, "timeout": 10}}
QUESTION = "What time do you open tomorrow?"
SLOW_LLM = LatencyProfile(first_s=0.3, gap_s=0.12, network_s=0.05)  # still streaming 1 s into the reply
MS_PER_CHAR = 0.065  # the emulated voice


def noise_wav(path, seconds, level_dbfs=-20.0):
    rng = np.random.default_rng(3)
    return write_wav(path, rng.standard_normal(int(8000 * seconds)) * 10 ** (level_dbfs / 20) * 32767)


def hum_wav(path, seconds):
    """Someone in the room going "mmm" (voiced, no words): the simulated voice with nothing to say."""
    x = np.frombuffer(ulaw_decode(synthetic_voice("m" * round(seconds / MS_PER_CHAR))), "<i2")
    return write_wav(path, x.astype(np.float64))


def write_wav(path, x):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(np.clip(x, -32768, 32767).astype("<i2").tobytes())
    return str(path)


def request_for(rig, text):
    return [r for r in rig.llm.requests if r.body and r.body["messages"][-1]["content"].endswith(text)]


@pytest.mark.parametrize("after", [0.3, 1.2, 2.6])  # LLM streaming; TTS speaking; all generated, still playing
@mock_clock
async def test_barge_in_stops_the_agent_and_cuts_history_to_what_was_heard(after):
    async with agent_rig(llm_profile=SLOW_LLM) as rig:
        result, call = await rig.call([GREETING, {"say": QUESTION},
                                       {"barge_in": {"after": after, "say": "Sorry, where are you located?"}}, AFTER])
    rec = call.record
    assert result.clears == 1 and len(result.barge_ins) == 1 and len(rec.barge_ins) == 1
    b, rb = result.barge_ins[0], rec.barge_ins[0]
    # the decision comes after barge_in_min_ms of speech as loud as the agent (the simulated voice
    # fades in over ~40 ms), and `clear` goes out in the same frame as the decision
    assert rb.onset == pytest.approx(b.onset, abs=0.021)
    assert 0.100 - 1e-6 <= rb.clear_sent - rb.onset <= 0.100 + 0.060 + 1e-6
    assert len(call.pacer.clear_latencies) == 1 and call.pacer.clear_latencies[0] <= 0.020
    assert b.clear_latency <= 0.17
    # Twilio (the simulated one) echoed the pending marks once it dropped the audio
    assert rb.playback_stopped is None or rb.clear_sent <= rb.playback_stopped <= b.audio_stopped + 0.05
    # the caller heard no more of that reply: silence from the clear until the next answer
    second = result.lines[1]
    assert result.agent_heard_between(b.clear_received + 0.021, second.end) == 0
    # the reply's TTS context and (early on) its LLM stream were closed at the clear
    answer = rig.contexts()[-2]  # the interrupted answer; the last one answers the barge-in
    assert answer.closed_at is not None and answer.closed_at - call.t0 <= rb.clear_sent + 0.05
    first_req = request_for(rig, QUESTION)[-1]
    if after < 1.0:
        assert first_req.disconnected_at is not None
        assert first_req.disconnected_at - call.t0 <= rb.clear_sent + 0.05
        assert "llm" in rb.cancelled
    assert "tts" in rb.cancelled or answer.final_at is not None
    # history: the assistant message is cut to the words heard, which the caller heard as audio
    turn = rec.turns[0]
    assert turn.interrupted and rb.outcome == "true"
    heard = turn.agent_text_heard
    assert heard and turn.agent_text_generated.startswith(heard.split()[0])
    heard_audio = result.agent_heard_between(result.lines[0].end, b.clear_received + 0.02)
    assert len(heard) * MS_PER_CHAR <= heard_audio + 0.02
    assert heard_audio - len(heard) * MS_PER_CHAR < 0.65  # at most the word being said was lost
    follow_up = request_for(rig, "Sorry, where are you located?")[-1]
    msgs = follow_up.body["messages"]
    assert msgs[-2] == {"role": "assistant", "content": heard}
    assert msgs[-1]["role"] == "user"
    # and the barge-in was answered
    assert len(rec.turns) == 2 and "located" in rec.turns[1].caller_text
    assert heard_after(result, second.end) - second.end <= 0.9


def espeak_voice(text):
    """eSpeak NG (the voice of `offhook demo`) from its first sound, as loud as the agent."""
    pytest.importorskip("espeakng_loader")
    from offhook.providers.espeak import synthesize
    x = np.frombuffer(synthesize(text, rate=8000), "<i2").astype(np.float64)
    x = x[np.flatnonzero(np.abs(x) > 300)[0]:]
    x = x / np.sqrt(np.mean(x ** 2)) * 10 ** (-18 / 20) * 32767
    return ulaw_encode(np.clip(x, -32768, 32767).astype("<i2").tobytes())


@mock_clock
async def test_an_interruption_in_espeaks_voice_clears_within_150_ms():
    # a real synthetic voice (formants, voiceless consonants) rather than the harmonic test voice:
    # its first vowel is what the voicing check waits for
    async with agent_rig() as rig:
        result, call = await rig.call([GREETING, {"say": QUESTION},
                                       {"barge_in": {"after": 1.2, "say": "Wait, are you open on Saturday?"}},
                                       AFTER], voice=espeak_voice)
    rec = call.record
    assert result.clears == 1 and len(rec.barge_ins) == 1 and rec.barge_ins[0].outcome == "true"
    b = result.barge_ins[0]
    assert b.clear_latency <= 0.150
    assert result.agent_heard_between(b.clear_received + 0.021, result.lines[1].end) == 0


@mock_clock
async def test_backchannel_with_quick_words_does_not_barge_in():
    fast_stt = LatencyProfile(first_s=0.04, gap_s=0.1, network_s=0.01)
    async with agent_rig(stt_profile=fast_stt) as rig:
        result, call = await rig.call([GREETING, {"say": QUESTION},
                                       {"barge_in": {"after": 0.6, "say": "mm-hm"}}, AFTER])
    assert result.clears == 0 and call.record.barge_ins == []
    # the answer played on as one stretch, over the backchannel (allowing the natural pause of up to
    # 0.3 s after a pre-rendered opener such as "Sure,")
    spans = heard_spans(result, gap_ticks=15)
    answer = [s for s in spans if s[0] >= result.lines[0].end]
    assert len(answer) == 1 and answer[0][1] > result.lines[1].end
    assert any(e.kind == "backchannel" for e in call.record.events)
    assert len(call.record.turns) == 1  # "mm-hm" was not a turn


@pytest.mark.parametrize("seconds", [0.08, 0.25])  # shorter than barge_in_min_ms; long but aperiodic
@mock_clock
async def test_a_cough_does_not_barge_in(tmp_path, seconds):
    cough = noise_wav(tmp_path / "cough.wav", seconds)
    async with agent_rig() as rig:
        result, call = await rig.call([GREETING, {"say": QUESTION},
                                       {"barge_in": {"after": 0.6, "say": "", "wav": cough}}, AFTER])
    assert result.clears == 0 and call.record.barge_ins == []
    answer = [s for s in heard_spans(result, gap_ticks=15) if s[0] >= result.lines[0].end]
    assert len(answer) == 1 and result.clears == 0


@pytest.mark.parametrize("sound", ["hum", "mm-hm"])
@mock_clock
async def test_false_barge_in_resumes_the_unheard_part(tmp_path, sound):
    # a 300 ms hum as loud as the agent (voiced, so it stops the agent, but no words ever), or a
    # backchannel whose words came too late to stop the barge-in (the default STT: first words
    # ~200 ms in, the decision at ~140 ms)
    step = {"say": "", "wav": hum_wav(tmp_path / "hum.wav", 0.3)} if sound == "hum" else {"say": "mm-hm"}
    async with agent_rig() as rig:
        result, call = await rig.call([GREETING, {"say": QUESTION},
                                       {"barge_in": {"after": 0.6, **step}}, AFTER,
                                       {"say": "Where are you located?"}, AFTER])
    rec = call.record
    assert result.clears == 1 and rec.barge_ins[0].outcome == "false"
    b = result.barge_ins[0]
    # no dead air: the agent goes on once the words turn out a backchannel, or a second after the
    # noise began when none come
    resumed_at = heard_after(result, b.clear_received + 0.05)
    assert resumed_at is not None and resumed_at - b.onset <= (1.0 if sound == "hum" else 0.5) + 0.5
    said = rig.said()
    # the reply opened with the pre-rendered "Sure," (never sent to the TTS), then the TTS'd rest
    assert rec.turns[0].agent_text_generated.startswith("Sure,")
    interrupted, resumed = f"Sure, {said[1]}", said[2]  # [greeting, answer, resumed rest, next answer]
    heard_at_clear = next(e.detail for e in rec.events if e.kind == "barge_in").split(": ", 1)[1]
    # the resumed utterance says exactly the words the caller had not heard ...
    assert heard_at_clear and resumed.strip()
    assert heard_at_clear.split() + resumed.split() == interrupted.split()
    # ... so in the end the caller heard the whole reply, and the history says so
    assert rec.turns[0].agent_text_heard.split() == interrupted.split()
    follow_up = request_for(rig, "Where are you located?")[-1].body["messages"]
    assert follow_up[-2]["role"] == "assistant" and follow_up[-2]["content"].split() == interrupted.split()
    assert len(rec.turns) == 2


class EchoLine:
    """What the simulated caller sends while silent: the agent's own voice coming back down the
    line 15 dB quieter, one frame late (a phone hybrid's echo), instead of plain line noise."""

    def __init__(self, caller, loss_db=15.0):
        self.caller, self.gain = caller, 10 ** (-loss_db / 20)
        self.silence = ulaw_encode(b"\x00\x00" * 160)

    def __len__(self):
        return 1

    def __getitem__(self, _):
        played = self.caller.playout.played
        if not played or played[-1][0] < self.caller._tick - 2:
            return self.silence
        pcm = np.frombuffer(ulaw_decode(played[-1][1]), dtype="<i2").astype(np.float64) * self.gain
        return ulaw_encode(pcm.astype("<i2").tobytes())


@mock_clock
async def test_the_agents_own_echo_does_not_barge_in():
    async with agent_rig() as rig:
        echoes = []

        def with_echo(caller):
            caller._noise = EchoLine(caller)
            echoes.append(caller)
            return caller

        result, call = await rig.call([GREETING, {"say": QUESTION}, AFTER], wrap=with_echo)
    # the caller's line carried the agent's voice back the whole time it talked ...
    loud_echo = [f for f in result.caller_frames[round(result.lines[0].end / 0.02):] if ulaw_level_db(f) > -45]
    assert len(loud_echo) > 50
    # ... and the agent neither stopped for it nor took it for a turn
    assert result.clears == 0 and call.record.barge_ins == []
    answer = [s for s in heard_spans(result, gap_ticks=15) if s[0] >= result.lines[0].end]
    assert len(answer) == 1 and len(call.record.turns) == 1
