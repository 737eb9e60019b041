"""The call session's sans-IO parts: turn-taker, barge-in detector, heard words, history, and the
TTS speaker's "what was not spoken yet"."""
import math

import pytest

from offhook.agent.bargein import AgentLevels, BargeInDetector, heard_words
from offhook.agent.endpointing import EndpointPolicy, TurnContext
from offhook.agent.fallback_tts import Attempt, Speaker
from offhook.agent.history import History
from offhook.agent.turns import CancelSpeculation, Commit, Finalize, Speculate, TurnTaker
from offhook.audio import ulaw_encode
from offhook.providers.base import Final, Partial
from offhook.sim.voice import synthetic_voice

F = 0.020


class Clock:
    """Feeds a TurnTaker frame by frame and polls it the way the call session does."""

    def __init__(self, tt):
        self.tt, self.t, self.actions = tt, 0.0, []

    def frames(self, seconds, speech):
        for _ in range(round(seconds / F)):
            self.t += F
            self.actions += [(round(self.t, 3), a) for a in self.tt.frame(speech, self.t)]
            self.actions += [(round(self.t, 3), a) for a in self.tt.poll(self.t)]

    def stt(self, ev):
        self.tt.stt(ev, self.t)
        self.actions += [(round(self.t, 3), a) for a in self.tt.poll(self.t)]

    def of(self, kind):
        return [(t, a) for t, a in self.actions if type(a) is kind]


def taker(**kw):
    return TurnTaker(EndpointPolicy(short_s=0.25, long_s=0.9, cap_s=3.0), cap_s=3.0, speculative_pause_s=0.15, **kw)


def test_complete_turn_commits_after_the_short_silence_with_a_speculative_start_at_150_ms():
    c = Clock(taker())
    c.frames(0.5, True)
    c.stt(Partial("what time do you open"))
    c.stt(Final("What time do you open tomorrow?", 0.93))
    c.frames(0.6, False)
    (t_spec, spec), = c.of(Speculate)
    (t_commit, commit), = c.of(Commit)
    assert spec.text == "What time do you open tomorrow?"
    assert t_spec == pytest.approx(0.5 + 0.16, abs=0.021)
    assert t_commit == pytest.approx(0.5 + 0.26, abs=0.021)
    assert commit.text == spec.text and commit.confidence == 0.93
    assert commit.speech_end == pytest.approx(0.5)
    assert not c.of(CancelSpeculation)


def test_unfinished_number_waits_for_the_long_silence_and_a_resume_cancels_speculation():
    c = Clock(taker())
    c.frames(0.8, True)
    c.stt(Final("My number is eight five oh", 0.9))
    c.frames(0.6, False)          # a pause mid-number: speculation yes, commit no
    assert len(c.of(Speculate)) == 1 and not c.of(Commit)
    c.frames(0.3, True)           # the caller goes on
    assert [a.reason for _, a in c.of(CancelSpeculation)] == ["resumed"]
    c.stt(Final("six eight seven two zero eight five.", 0.9))
    c.frames(1.0, False)
    (_, commit), = c.of(Commit)
    assert commit.text == "My number is eight five oh six eight seven two zero eight five."


def test_partial_only_asks_the_stt_to_finalise_and_the_cap_commits_whatever_was_said():
    c = Clock(taker())
    c.frames(0.4, True)
    c.stt(Partial("book me in for"))
    c.frames(1.0, False)
    assert len(c.of(Finalize)) == 1 and not c.of(Commit)   # "for": unfinished, and only a partial
    c.frames(2.1, False)
    (t, commit), = c.of(Commit)
    assert t == pytest.approx(0.4 + 3.0, abs=0.021) and commit.text == "book me in for"
    assert commit.confidence is None  # committed on a partial


def test_a_question_closed_by_the_stt_endpoint_commits_short_even_when_a_slot_was_expected():
    for speech_final, commit_after in ((True, 0.26), (False, 0.92)):
        tt = taker()
        tt.ctx = TurnContext(expecting="phone")  # the agent had asked "what number can I reach you on?"
        c = Clock(tt)
        c.frames(0.5, True)
        c.stt(Final("Are you open on Saturday?", 0.95, speech_final=speech_final))
        c.frames(1.0, False)
        (t, _), = c.of(Commit)
        assert t == pytest.approx(0.5 + commit_after, abs=0.021)


def test_words_changing_during_the_pause_restart_speculation():
    c = Clock(taker())
    c.frames(0.5, True)
    c.stt(Partial("where are you"))
    c.frames(0.17, False)
    c.stt(Final("Where are you located?", 0.95))
    assert [a.reason for _, a in c.of(CancelSpeculation)] == ["changed"]
    assert [a.text for _, a in c.of(Speculate)] == ["where are you", "Where are you located?"]


def test_a_burst_over_the_agent_that_did_not_barge_in_is_not_a_turn():
    tt = taker()
    c = Clock(tt)
    tt.open = False               # the agent is talking
    c.frames(0.3, True)
    c.stt(Partial("mm-hm"))
    c.frames(0.2, False)
    c.stt(Final("Mm-hm.", 0.9))   # late final of the same burst
    tt.open = True                # the agent finished
    c.frames(1.0, False)
    assert tt.text == "" and not c.of(Commit) and not c.of(Speculate)


def test_a_resumed_commit_becomes_the_start_of_the_next_turn():
    tt = taker()
    c = Clock(tt)
    c.frames(0.5, True)
    c.stt(Final("I'd like to book", 0.9))
    c.frames(0.3, False)
    (_, first), = c.of(Commit)
    tt.resume_with(first.text)
    c.frames(0.4, True)
    c.stt(Final("a haircut on Friday.", 0.9))
    c.frames(0.4, False)
    assert [a.text for _, a in c.of(Commit)][-1] == "I'd like to book a haircut on Friday."


def test_next_deadline_is_the_earliest_decision_and_inf_while_talking():
    tt = taker()
    assert tt.next_deadline() == math.inf
    tt.frame(True, 0.02), tt.frame(True, 0.04), tt.frame(True, 0.06)
    tt.stt(Final("Hello there.", 0.9), 0.06)
    assert tt.next_deadline() == math.inf   # still voicing
    tt.frame(False, 0.08)
    assert tt.next_deadline() == pytest.approx(0.06 + 0.15)


# ---------------------------------------------------------------- barge-in
VOICE = synthetic_voice("a long enough vowel to cut frames from", level_dbfs=-18.0)  # harmonic, like a voice
SILENCE = ulaw_encode(b"\x00\x00" * 160)


def run_detector(det, frames, agent_db=-20.0):
    """Feeds (speech, level) frames; the audio of a speech frame is a slice of a harmonic voice."""
    t, fired = 0.0, []
    for i, (speech, level) in enumerate(frames):
        t += F
        audio = VOICE[160 * i:160 * (i + 1)] if speech else SILENCE
        onset = det.frame(speech, level, agent_db, t, audio)
        if onset is not None:
            fired.append((round(t, 3), round(onset, 3)))
    return fired


def test_detector_fires_after_min_ms_of_speech_as_loud_as_the_agent_once_per_burst():
    det = BargeInDetector(min_ms=100)
    fired = run_detector(det, [(False, -70)] * 5 + [(True, -18)] * 20)
    assert fired == [(0.2, 0.1)]  # onset at the burst's first frame, decision 5 frames later


def test_echo_below_the_agent_level_and_short_noises_never_fire():
    det = BargeInDetector(min_ms=100)
    echo = [(True, -35)] * 50                      # the agent's own voice, 15 dB down
    click = [(True, -15)] * 3 + [(False, -70)] * 5  # 60 ms
    assert run_detector(det, echo + click * 4) == []


def test_a_syllable_dip_does_not_restart_the_count_but_a_pause_does():
    det = BargeInDetector(min_ms=100)
    dip = [(True, -18)] * 3 + [(True, -30)] * 2 + [(True, -18)] * 2
    assert run_detector(det, dip) == [(0.14, 0.0)]
    det.reset()
    paused = [(True, -18)] * 3 + [(False, -70)] * 4 + [(True, -18)] * 3
    assert run_detector(det, paused) == []


def test_agent_silent_mid_reply_counts_any_speech_and_agent_not_talking_resets():
    det = BargeInDetector(min_ms=100)
    assert run_detector(det, [(True, -40)] * 6, agent_db=-math.inf) == [(0.1, 0.0)]
    det.reset()
    assert run_detector(det, [(True, -10)] * 10, agent_db=None) == []


class Utt:
    def __init__(self, uid, starts):
        self.id, self.play_starts = uid, starts


def test_agent_levels_follow_the_playback_schedule_with_an_echo_tail():
    lv = AgentLevels(tail_frames=2)
    lv.add(7, [-20.0, -40.0, -40.0, -40.0])
    u = Utt(7, [1.0, 1.02, 1.04, 1.06])
    assert lv.at(u, 0.99) is None           # not playing yet
    assert lv.at(u, 1.045) == -20.0          # within the tail of the loud frame
    assert lv.at(u, 1.065) == -40.0
    assert lv.at(u, 1.2) is None             # long over


def test_heard_words_counts_a_word_once_its_last_letter_played():
    al = [(c, i * 65.0, (i + 1) * 65.0) for i, c in enumerate("Sure, on Wednesday.")]
    assert heard_words(al, 260) == "Sure,"     # "e" ended at 260; the comma need not have played
    assert heard_words(al, 250) == ""
    assert heard_words(al, 65 * 8) == "Sure, on"
    assert heard_words(al, 65 * 18) == "Sure, on Wednesday."


# ---------------------------------------------------------------- history
def test_history_alternates_cuts_and_drops_unheard_replies():
    h = History()
    assert h.add_assistant("greeting") not in h.messages   # never an assistant turn first
    h.add_user("hi")
    msg = h.add_assistant("Sure, we open at nine.")
    h.set_assistant(msg, "Sure,")
    assert h.messages == [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Sure,"}]
    h.add_user("and Saturday?")
    msg = h.add_assistant("On Saturday")
    h.set_assistant(msg, "")  # nothing was heard: the two caller turns merge
    assert h.messages[-1] == {"role": "user", "content": "and Saturday?"}
    h.add_user("hello?")
    assert h.messages[-1] == {"role": "user", "content": "and Saturday? hello?"}
    assert h.request("x")[-1] == {"role": "user", "content": "and Saturday? hello? x"}
    assert h.messages[-1]["content"] == "and Saturday? hello?"  # request() leaves it as it was


# ---------------------------------------------------------------- the speaker's re-send
@pytest.mark.parametrize("sent,spoken,rest", [
    ("Sure, we open at nine. ", "Sure, we op", "open at nine."),
    ("Sure, we open at nine. ", "Sure, we ", "open at nine."),
    ("Sure, we open at nine. ", "", "Sure, we open at nine."),
    ("Sure, we open at nine. ", "Sure, we open at nine. ", ""),
])
def test_unspoken_text_restarts_at_the_first_word_whose_audio_never_came(sent, spoken, rest):
    att = Attempt(voice=None, sent=sent, spoken=spoken)
    assert Speaker._unspoken(att) == rest


# ---------------------------------------------------------------- configuration
def test_agent_settings_load_from_the_environment_and_toml_and_bad_values_are_clear_errors(tmp_path):
    from offhook.server.config import Config, ConfigError
    path = tmp_path / "offhook.toml"
    path.write_text('[offhook]\nbarge_in_min_ms = 140\nstall_after_s = 1.5\nendpoint_long_s = "1.1"\n')
    cfg = Config.load(str(path), env={}, validate_signatures=False)
    assert (cfg.barge_in_min_ms, cfg.stall_after_s, cfg.endpoint_long_s) == (140, 1.5, 1.1)
    assert (cfg.llm_failures_handoff, cfg.tts_first_audio_timeout_s, cfg.endpoint_cap_s) == (3, 1.2, 3.0)
    for bad, message in [({"barge_in_min_ms": "soon"}, "barge_in_min_ms must be a number"),
                         ({"barge_in_min_ms": 5}, "barge_in_min_ms must be 20..2000"),
                         ({"endpoint_short_s": 1.0, "endpoint_long_s": 0.5}, "must be ordered"),
                         ({"stall_after_s": 7.0}, "stall_after_s must be shorter than llm_timeout_s"),
                         ({"llm_failures_handoff": 0}, "llm_failures_handoff must be 1..100")]:
        with pytest.raises(ConfigError, match=message):
            Config.load(env={}, validate_signatures=False, **bad)
