"""CallRecorder: the stereo WAV is the call as heard, on one timeline, in bounded memory."""
import tracemalloc
import wave

import numpy as np
import pytest

from offhook.audio import ulaw_decode
from offhook.observe.record import CallRecord, EndedBy, EndReason
from offhook.observe.recording import CallRecorder, keep_decision, sample_fraction

F = 160
CALLER, AGENT = 0x10, 0x90  # two mu-law codes, loud and distinguishable
LOUD_CALLER = int(np.frombuffer(ulaw_decode(bytes([CALLER])), "<i2")[0])
LOUD_AGENT = int(np.frombuffer(ulaw_decode(bytes([AGENT])), "<i2")[0])


def read(path):
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, 8000)
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2)
    return pcm[:, 0], pcm[:, 1]


def test_caller_left_agent_right_on_one_timeline(tmp_path):
    r = CallRecorder(tmp_path / "spool", "CA1")
    # the caller talks for 1 s from 0.5 s (each frame arrives as its 20 ms end)
    for k in range(50):
        r.caller(bytes([CALLER]) * F, 0.5 + 0.02 * (k + 1))
    # the agent's 0.4 s reply is scheduled to play from 2.0 s; the caller's line goes on, silent
    for k in range(20):
        r.agent(bytes([AGENT]) * F, 2.0 + 0.02 * k)
    for k in range(100):
        r.caller(b"\xff" * F, 1.5 + 0.02 * (k + 1))
    r.save(tmp_path / "out" / "CA1.wav")
    left, right = read(tmp_path / "out" / "CA1.wav")
    assert len(left) == 8000 * 3.5
    assert (left[4000:12000] == LOUD_CALLER).all() and (left[:4000] == 0).all() and (left[12000:] == 0).all()
    assert (right[16000:19200] == LOUD_AGENT).all() and (right[:16000] == 0).all() and (right[19200:] == 0).all()
    assert not list((tmp_path / "spool").iterdir())  # the spool is gone


def test_a_clear_cuts_the_agent_where_the_caller_stopped_hearing_it(tmp_path):
    r = CallRecorder(tmp_path / "spool", "CA2")
    for k in range(25):  # 0.5 s of reply sent ahead of play, from 1.0 s
        r.agent(bytes([AGENT]) * F, 1.0 + 0.02 * k)
    for k in range(60):  # the caller's line up to 1.2 s
        r.caller(b"\xff" * F, 0.02 * (k + 1))
    r.clear(1.205)       # barge-in: Twilio drops everything from 1.205 s on
    for k in range(10):  # the next reply, after the clear
        r.agent(bytes([AGENT]) * F, 1.6 + 0.02 * k)
    for k in range(40):
        r.caller(b"\xff" * F, 1.2 + 0.02 * (k + 1))
    r.save(tmp_path / "CA2.wav")
    _, right = read(tmp_path / "CA2.wav")
    cut = int(1.205 * 8000)
    assert (right[8000:cut] == LOUD_AGENT).all()              # heard up to the clear, mid-frame
    assert (right[cut:int(1.6 * 8000)] == 0).all()             # the cleared 0.295 s never played
    assert (right[int(1.6 * 8000):int(1.8 * 8000)] == LOUD_AGENT).all()
    assert r.clears == 1 and r.agent_frames_dropped == 14  # those scheduled from 1.22 s to 1.48 s


def test_lost_caller_frames_resynchronise_to_the_clock(tmp_path):
    r = CallRecorder(tmp_path, "CA3")
    for k in range(10):
        r.caller(bytes([CALLER]) * F, 0.02 * (k + 1))
    for k in range(10):  # a 2 s network gap: these arrived late, their audio is from 2.2 s
        r.caller(bytes([CALLER]) * F, 2.2 + 0.02 * (k + 1))
    r.save(tmp_path / "CA3.wav")
    left, _ = read(tmp_path / "CA3.wav")
    assert (left[:1600] == LOUD_CALLER).all() and (left[1600:17600] == 0).all()
    assert (left[17600:19200] == LOUD_CALLER).all()


def test_a_long_call_records_in_bounded_memory(tmp_path):
    r = CallRecorder(tmp_path / "spool", "CAlong")
    tracemalloc.start()
    try:
        for k in range(90_000):  # half an hour of both sides, the agent 60 ms ahead
            t = 0.02 * (k + 1)
            r.agent(bytes([AGENT]) * F, t + 0.06)
            r.caller(bytes([CALLER]) * F, t)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000  # the 2 x 14.4 MB of audio went to the spool, not to memory
    r.close()
    assert (tmp_path / "spool" / "CAlong.caller.ulaw").stat().st_size == 90_000 * F
    r.discard()
    assert not list((tmp_path / "spool").iterdir())


def test_a_full_disk_loses_the_recording_not_the_call(tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    (spool / "CAfull.caller.ulaw").symlink_to("/dev/full")  # every flush fails with ENOSPC
    r = CallRecorder(spool, "CAfull")
    for k in range(500):  # 10 s: more than the write buffer, so it flushes
        r.caller(bytes([CALLER]) * F, 0.02 * (k + 1))
        r.agent(bytes([AGENT]) * F, 0.02 * k)
    assert r.failed
    r.close()
    r.discard()
    assert not list(spool.iterdir())


def test_frames_after_the_end_are_ignored(tmp_path):
    r = CallRecorder(tmp_path, "CA4")
    r.caller(bytes([CALLER]) * F, 0.02)
    r.close()
    r.caller(bytes([CALLER]) * F, 0.04)
    r.agent(bytes([AGENT]) * F, 0.04)
    r.clear(0.05)
    assert r.seconds == pytest.approx(0.02)


def rec(reason, by, duration, sid="CAx"):
    return CallRecord(sid, started_at=100.0, ended_at=100.0 + duration, end_reason=reason, ended_by=by, complete=True)


def unsampled_sid():
    return next(s for s in (f"CA{i}" for i in range(1000)) if sample_fraction(s) > 0.5)


def test_which_recordings_are_kept():
    sid = unsampled_sid()
    assert keep_decision(rec(EndReason.HANDOFF_HUMAN, EndedBy.AGENT, 300, sid), 0.0) == "handoff"
    assert keep_decision(rec(EndReason.HANDOFF_VOICEMAIL, EndedBy.AGENT, 300, sid), 0.0) == "handoff"
    assert keep_decision(rec(EndReason.ERROR_PROVIDER, EndedBy.SYSTEM, 300, sid), 0.0) == "error"
    assert keep_decision(rec(EndReason.LLM_FAILURES, EndedBy.AGENT, 300, sid), 0.0) == "error"
    assert keep_decision(rec(EndReason.CALLER_HANGUP, EndedBy.CALLER, 29.9, sid), 0.0) == "short_hangup"
    assert keep_decision(rec(EndReason.CALLER_HANGUP, EndedBy.CALLER, 30.0, sid), 0.0) is None
    assert keep_decision(rec(EndReason.AGENT_END, EndedBy.AGENT, 10, sid), 0.0) is None
    assert keep_decision(rec(EndReason.AGENT_END, EndedBy.AGENT, 10, sid), 1.0) == "sampled"


def test_the_sample_is_the_configured_fraction_and_the_same_everywhere():
    sids = [f"CA{i:032x}" for i in range(20_000)]
    kept = sum(keep_decision(rec(EndReason.AGENT_END, EndedBy.AGENT, 60, s), 0.1) == "sampled" for s in sids)
    assert 0.09 <= kept / len(sids) <= 0.11
    assert [sample_fraction(s) for s in sids[:5]] == [sample_fraction(s) for s in sids[:5]]
