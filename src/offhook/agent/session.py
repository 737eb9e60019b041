"""The call session: one `AgentCall` per media stream (the server's CallHandler).

Tasks in the call's nursery (DESIGN §2): the socket reader is the server's and calls `on_audio`
inline per frame (audio core -> STT send -> barge-in and VAD decisions, no task hop); the STT
receiver; the turn loop (endpointing deadlines, speculation, commits); one task per reply (each in
its own cancel scope); one holder per TTS session; the watchdog. `run()` returning or the call
ending cancels them all; the call record is filled as things happen and completed on the way out.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING

import trio

from offhook.agent.backchannel import is_backchannel
from offhook.agent.bargein import AgentLevels, BargeInDetector, heard_words
from offhook.agent.confirm import confirmation_for, is_affirmative
from offhook.agent.endpointing import EndpointPolicy, TurnContext, expecting_from_question
from offhook.agent.fallback_tts import Voice
from offhook.agent.history import History
from offhook.agent.responder import Reply
from offhook.agent.stt_feed import SttFeed
from offhook.agent.turns import CancelSpeculation, Commit, Finalize, Speculate, TurnTaker
from offhook.audio import InboundPath
from offhook.observe.record import BargeInRecord, CallRecord, EventRecord, TurnRecord
from offhook.providers.base import STTError
from offhook.server.media import AfterAction, MediaCall

if TYPE_CHECKING:  # pragma: no cover
    from offhook.agent.factory import AgentShared

log = logging.getLogger("offhook.agent")

FRAME_S = 0.020
FALSE_BARGE_S = 1.0          # no words this long after a barge-in: it was noise
DEAD_AIR_S = 1.0             # speaking, owing audio, and the line silent this long: the TTS is stuck
STT_SILENT_S = 10.0          # speech on the line but no STT event this long: the STT stream is stuck
# the watchdog's longest sleep: under DEAD_AIR_S, so a voice that starts owing audio meanwhile is
# looked at before it can have been dry that long
IDLE_WATCHDOG_PERIOD_S = 0.5
STT_RETRY_S, STT_RETRY_MAX_S = 0.2, 5.0
REPEAT_PLEASE = "Sorry about that. Could you say it again?"


@dataclass
class BargeIn:
    record: BargeInRecord
    reply: Reply | None
    heard: str
    unheard: str
    decided_at: float


class AgentCall:
    def __init__(self, shared: "AgentShared", call: MediaCall) -> None:
        self.shared = shared
        self.config = cfg = shared.config
        self.call = call
        self.pacer = call.pacer
        start = call.start
        self.record = CallRecord(call_sid=start.call_sid, stream_sid=start.stream_sid,
                                 account_sid=start.account_sid, from_number=start.custom_parameters.get("from", ""),
                                 to_number=start.custom_parameters.get("to", ""), started_at=time.time(),
                                 t0=call.t0, server_id=getattr(cfg, "server_id", ""))
        call.record = self.record
        self.llm = shared.providers.llm
        self.system_prompt = shared.system_prompt
        self.voices = [Voice(p.name, p, shared.breakers[p.name]) for p in shared.providers.tts]
        self.inbound = InboundPath(stt_rate=8000, stt_encoding="ulaw")
        self.turns = TurnTaker(EndpointPolicy(short_s=cfg.endpoint_short_s, long_s=cfg.endpoint_long_s,
                                              cap_s=cfg.endpoint_cap_s),
                               cap_s=cfg.endpoint_cap_s, speculative_pause_s=cfg.speculative_pause_s)
        self.detector = BargeInDetector(min_ms=cfg.barge_in_min_ms)
        self.levels = AgentLevels()
        self.history = History()
        self.stt = None
        self.stt_feed = SttFeed()
        self._stt_scope: trio.CancelScope | None = None
        self._stt_seconds_closed = 0.0
        self.last_stt_at = trio.current_time()
        self.voiced_since_stt_ms = 0.0
        self.nursery: trio.Nursery | None = None
        self.pending: Reply | None = None      # the reply being prepared (speculative or committed)
        self.speaking: Reply | None = None     # the committed reply whose audio the caller gets
        self.barge: BargeIn | None = None
        self.confirming: str | None = None     # the words we asked the caller to confirm
        self.llm_failures = 0
        self.spec_starts = self.spec_hits = self.spec_wasted_tokens = 0
        self.turn_by_utterance: dict[int, TurnRecord] = {}
        self.barge_by_utterance: dict[int, BargeInRecord] = {}
        self.cpu_s = 0.0                        # wall time spent in offhook's own per-frame work
        self.frames = 0
        self.turn_cpu_s: list[float] = []       # per answered turn: own work on the critical path
        self.answered: list[Reply] = []         # replies that were heard, for the latency waterfall
        self._poke = trio.Event()

    # ------------------------------------------------------------ helpers
    def rel(self, t: float | None) -> float | None:
        return None if t is None else t - self.call.t0

    def event(self, kind: str, detail: str = "") -> None:
        self.record.events.append(EventRecord(kind, trio.current_time() - self.call.t0, detail))
        self.call.event(kind, detail)
        log.debug("call %s: %s %s", self.call.call_sid, kind, detail)

    def poke(self) -> None:
        self._poke.set()

    # ------------------------------------------------------------ CallHandler
    async def run(self, call: MediaCall) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self.nursery = nursery
                for i, voice in enumerate(self.voices):
                    if i == 0:
                        await nursery.start(self._hold_session, voice)
                    else:
                        nursery.start_soon(self._hold_session, voice)
                nursery.start_soon(self._stt_loop)
                nursery.start_soon(self._turn_loop)
                nursery.start_soon(self._watchdog)
                self._say("greeting", self.shared.greeting)
                await trio.sleep_forever()
        finally:
            self._finish_record()

    async def on_audio(self, call: MediaCall, frame: bytes) -> None:
        t = time.perf_counter()
        out, speech, level = self.inbound.process(frame)
        stt = self.stt
        now = trio.current_time()
        if stt is not None and (out := self.stt_feed.take(out, speech, now)) is not None:
            self.cpu_s += time.perf_counter() - t
            try:
                await stt.send(out)
            except (STTError, OSError) as e:
                self.event("stt_error", str(e)[:160])
                self._restart_stt()
            t = time.perf_counter()
            now = trio.current_time()
        if speech:
            self.voiced_since_stt_ms += FRAME_S * 1000
        onset = self.detector.frame(speech, level, self._agent_level(now), now, frame)
        if onset is not None:
            await self._barge_in(onset, now)
        was, was_active = self.turns.voicing, self.turns.active
        self.turns.open = self.barge is not None or not self._agent_talking(now)
        for act in self.turns.frame(speech, now):
            self._act(act)
        if self.turns.voicing and not was:
            self._caller_resumed()
        if self.turns.active != was_active:
            self.poke()
        self.frames += 1
        self.cpu_s += time.perf_counter() - t

    def on_mark(self, call: MediaCall, name: str) -> None:
        uid, _, _ = name.partition(":")
        try:
            rec = self.barge_by_utterance.pop(int(uid), None)
            turn = self.turn_by_utterance.pop(int(uid), None)
        except ValueError:
            return
        if rec is not None and rec.playback_stopped is None:
            # Twilio echoes the marks still pending once it has dropped the audio: playback stopped
            rec.playback_stopped = trio.current_time() - self.call.t0
        if turn is None:
            return
        u = self.pacer.utterances.get(int(uid))
        if u is None or name not in u.marks or not u.play_starts:
            return
        now = trio.current_time()
        turn.first_frame_sent = self.rel(u.first_sent_at)
        if u.cleared_at is None:
            turn.first_frame_played = self.rel(max(u.play_starts[0], now - u.marks[name] * FRAME_S))

    def on_dtmf(self, call: MediaCall, digit: str) -> None:
        pass  # the media session records it; the agent has no keypad menu

    # ------------------------------------------------------------ TTS sessions
    async def _hold_session(self, voice: Voice, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Keeps one provider's warm session open for the call (a session is entered and left in
        the same task). A voice whose session cannot open is skipped by the speaker."""
        started = False
        try:
            async with voice.provider.session() as session:
                voice.session = session
                task_status.started()
                started = True
                await trio.sleep_forever()
        except Exception as e:  # a voice that cannot open must not end the call
            self.event("tts_session_error", f"{voice.name}: {type(e).__name__}: {e}"[:200])
            voice.breaker.record_failure()
        finally:
            voice.session = None
            if not started:
                task_status.started()

    # ------------------------------------------------------------ STT
    async def _stt_loop(self) -> None:
        backoff = STT_RETRY_S
        while True:
            failed = False
            with trio.CancelScope() as scope:
                self._stt_scope = scope
                try:
                    async with self.shared.providers.stt.stream(sample_rate=8000, encoding="mulaw",
                                                                tag=self.call.call_sid) as stream:
                        self.stt = stream
                        self.last_stt_at = trio.current_time()
                        self.stt_feed.voiced(self.last_stt_at)
                        self.voiced_since_stt_ms = 0.0
                        try:
                            async for ev in stream:
                                self._on_stt(ev)
                                backoff = STT_RETRY_S
                        finally:
                            self.stt = None
                            self._stt_seconds_closed += stream.audio_seconds
                except* (STTError, OSError) as group:
                    failed = True
                    if backoff == STT_RETRY_S:  # one event per outage, not one per retry
                        self.event("stt_error", str(group.exceptions[0])[:160])
            self.stt = None
            await trio.sleep(backoff)  # then reconnect, backing off while the STT keeps failing
            if failed:
                backoff = min(backoff * 2, STT_RETRY_MAX_S)

    def _restart_stt(self) -> None:
        self.stt = None
        if self._stt_scope is not None:
            self._stt_scope.cancel()

    def _on_stt(self, ev) -> None:
        now = trio.current_time()
        self.last_stt_at = now
        self.voiced_since_stt_ms = 0.0
        self.turns.stt(ev, now)
        self.poke()

    # ------------------------------------------------------------ turn-taking
    async def _turn_loop(self) -> None:
        while True:
            now = trio.current_time()
            for act in self.turns.poll(now):
                self._act(act)
            self._settle_barge_in(now)
            deadline = self.turns.next_deadline()
            if self.barge is not None:
                settle = self.barge.record.onset + self.call.t0 + FALSE_BARGE_S
                if settle > now:
                    deadline = min(deadline, settle)
            # a deadline that passed without a decision waits for input, re-checked each frame
            deadline = max(deadline, now + FRAME_S)
            self._poke = trio.Event()
            with trio.move_on_at(deadline):
                await self._poke.wait()

    def _act(self, act) -> None:
        if self.nursery is None:
            return  # frames can arrive before run() has opened the call's nursery
        if type(act) is Speculate:
            self._speculate(act.text)
        elif type(act) is CancelSpeculation:
            self._drop_pending(act.reason)
        elif type(act) is Finalize:
            stt = self.stt
            if stt is not None:
                self.nursery.start_soon(self._finalize, stt)
        elif type(act) is Commit:
            self._commit(act)

    async def _finalize(self, stt) -> None:
        try:
            await stt.finalize()
        except STTError as e:
            self.event("stt_error", f"finalize: {e}"[:160])

    def _speculate(self, text: str) -> None:
        ask = text
        if self.confirming is not None:
            # the answer to "did you say ...?" is not sent to the LLM as such; a "yes" means the
            # confirmed words, which can be prepared at once
            if is_affirmative(text) is not True:
                return
            ask = self.confirming
        self._drop_pending("restart")
        reply = Reply(self, kind="llm", messages=self.history.request(ask), key=text)
        self.pending = reply
        self.spec_starts += 1
        self.event("speculative_start", text[:200])
        self.nursery.start_soon(self._run_reply, reply)

    def _drop_pending(self, reason: str) -> None:
        reply = self.pending
        if reply is None or reply.committed:
            return
        self.pending = None
        reply.scope.cancel()
        wasted = reply.output_tokens
        self.spec_wasted_tokens += wasted
        self.event("speculative_cancel", f"{reason}; {wasted} tokens wasted")

    def _commit(self, c: Commit) -> None:
        t_cpu = time.perf_counter()
        try:
            self._commit_turn(c)
        finally:
            if self.speaking is not None and self.speaking.turn is not None:
                self.speaking.cpu_s += time.perf_counter() - t_cpu

    def _commit_turn(self, c: Commit) -> None:
        if self.barge is not None:
            self._barge_outcome("true")
        text = said = c.text
        turn = TurnRecord(index=len(self.record.turns), caller_text=text, caller_confidence=c.confidence,
                          speech_end=self.rel(c.speech_end), stt_final=self.rel(c.stt_final),
                          endpoint_commit=self.rel(c.committed_at))
        self.record.turns.append(turn)
        if self.confirming is not None:
            asked, self.confirming = self.confirming, None
            answer = is_affirmative(text)
            if answer is True:
                self.event("confirmation", f"confirmed: {asked}"[:200])
                text = asked
            elif answer is False and len(text.split()) <= 3:
                # a bare "no": ask again rather than guess (a "no, it's ..." is itself the new turn)
                self.event("confirmation", f"denied: {asked}"[:200])
                self._drop_pending("confirming")
                turn.agent_text_generated = REPEAT_PLEASE
                self._say("confirm", REPEAT_PLEASE, turn)
                return
        else:
            question = confirmation_for(text, c.confidence, self.turns.ctx)
            if question:
                self._drop_pending("confirming")
                self.confirming = text
                self.event("confirmation", f"asked about: {text}"[:200])
                turn.agent_text_generated = question
                self._say("confirm", question, turn)
                return
        reply = self.pending
        if reply is not None and not reply.committed and self.turns.matches(reply.key, said):
            turn.speculative = "hit"
            self.spec_hits += 1
            self.event("speculative_hit", f"{reply.output_tokens} tokens ready")
            if reply.first_token_at is not None:
                turn.llm_first_token = self.rel(reply.first_token_at)
        else:
            if reply is not None and not reply.committed:
                turn.speculative = "miss"
                self._drop_pending("changed before commit")
            reply = Reply(self, kind="llm", messages=self.history.request(text), key=text)
            self.nursery.start_soon(self._run_reply, reply)
        self.history.add_user(text)
        self.pending = None
        self.speaking = reply
        reply.commit(turn)

    def _caller_resumed(self) -> None:
        """The caller talks again after a commit, before the agent said a word: that commit was
        premature (a pause mid-sentence); the words so far start the turn still being spoken."""
        reply = self.speaking
        if (reply is None or self.barge is not None or reply.kind != "llm" or reply.finished.is_set()
                or reply.utterance_ids or reply.stall_utterance is not None):
            return
        reply.scope.cancel()
        self.speaking = None
        msgs = self.history.messages
        if msgs and msgs[-1]["role"] == "user":
            msgs.pop()
        if reply.turn is not None and reply.turn in self.record.turns:
            self.record.turns.remove(reply.turn)
        self.turns.resume_with(reply.key)
        self.event("commit_retracted", reply.key[:200])

    # ------------------------------------------------------------ replies
    def _say(self, kind: str, text: str, turn: TurnRecord | None = None) -> Reply:
        reply = Reply(self, kind=kind, text=text)
        self.speaking = reply
        self.nursery.start_soon(self._run_reply, reply)
        reply.commit(turn)
        return reply

    async def _run_reply(self, reply: Reply) -> None:
        try:
            await reply.run()
        finally:
            self._reply_done(reply)
        if reply.handoff and not reply.scope.cancelled_caught:
            await self._handoff_end()

    def _reply_done(self, reply: Reply) -> None:
        if reply.turn is not None and reply.kind == "llm" and reply.speaking_started:
            self.turn_cpu_s.append(reply.cpu_s + reply.speaker.first_chunk_cpu_s)
            self.answered.append(reply)
        usage = self.record.usage
        for u in reply.usages:
            usage.llm_input_tokens += u.input_tokens
            usage.llm_cache_read_tokens += u.cache_read_tokens
            usage.llm_cache_write_tokens += u.cache_write_tokens
        # a stream cut off (barge-in, cancelled speculation) never sent its final usage: count deltas
        usage.llm_output_tokens += reply.output_tokens
        if reply.speaker is not None:
            for att in reply.speaker.attempts:
                self.add_tts_usage(att.voice.name, att.characters or len(att.sent))
        if reply.kind != "llm" and reply.kind != "resume" or not reply.committed:
            return
        if self.barge is not None and self.barge.reply is reply:
            return  # cut to what was heard by the barge-in
        words = reply.fixed if reply.kind == "resume" else reply.generated.strip()
        if reply.turn is not None and reply.kind == "resume":
            reply.turn.agent_text_heard = f"{reply.turn.agent_text_heard} {words}".strip()
        elif reply.turn is not None:
            reply.turn.agent_text_generated = words
            reply.turn.agent_text_heard = words
        if reply.kind == "resume":
            self._extend_history(reply, words)
        elif words and not reply.scope.cancelled_caught:
            reply.history_msg = self.history.add_assistant(words)  # a later barge-in may still cut it
        self.turns.ctx = TurnContext(expecting=expecting_from_question(words))

    def add_tts_usage(self, name: str, chars: int) -> None:
        if chars:
            self.record.usage.add_tts(name, chars)

    def play_stall(self) -> int | None:
        """The pre-rendered stall phrase in the voice the reply will most likely use."""
        for voice in self.voices:
            if voice.session is None or voice.breaker.state != "closed" or not self.shared.stall.rendered(voice.name):
                continue
            text, frames = self.shared.stall.frames(voice.name)
            u = self.pacer.start_utterance(text)
            self.pacer.enqueue(list(frames))
            self.levels.add(u.id, [self.shared.frame_level(f) for f in frames])
            self.pacer.end_utterance()
            self.event("stall", text)
            return u.id
        return None

    # ------------------------------------------------------------ LLM failures and handoff
    def llm_succeeded(self) -> None:
        self.llm_failures = 0

    def llm_failed(self, err: BaseException) -> bool:
        """Count a failure; True when this one reaches the handoff threshold."""
        self.llm_failures += 1
        kind = getattr(err, "kind", type(err).__name__)
        self.event("llm_failure", f"{kind}: {err}"[:200])
        if self.llm_failures >= self.config.llm_failures_handoff:
            self.event("handoff", f"{self.llm_failures} consecutive LLM failures")
            return True
        return False

    async def _handoff_end(self) -> None:
        # let the handoff line play out, then end the stream: Twilio fetches /twilio/after-stream
        with trio.move_on_after(15):
            while self.pacer.playing():
                await trio.sleep(FRAME_S)
        if self.config.handoff_number:
            self.call.end("handoff_human", "agent", AfterAction("dial", number=self.config.handoff_number))
        else:
            self.call.end("handoff_voicemail", "agent", AfterAction("voicemail", self.config.voicemail_prompt))

    # ------------------------------------------------------------ barge-in
    def _agent_level(self, now: float) -> float | None:
        """The level of the agent audio the caller hears now; -inf when the agent is mid-reply but
        momentarily silent (waiting for the next clause); None when it is not talking."""
        if self.pacer.playing(now):
            utterances = self.pacer.utterances
            for uid in islice(reversed(utterances), 3):  # not a list of the whole call's, per frame
                level = self.levels.at(utterances[uid], now)
                if level is not None:
                    return level
        if self.barge is None and self._mid_reply():
            return -math.inf
        return None

    def _mid_reply(self) -> bool:
        """The agent has started a reply that has more to say (it may be silent for a moment,
        waiting for the next clause)."""
        reply = self.speaking
        return (reply is not None and bool(reply.utterance_ids) and not reply.finished.is_set()
                and reply.speaker is not None and reply.speaker.owes_audio)

    def _agent_talking(self, now: float) -> bool:
        return self.pacer.playing(now) or self._mid_reply()

    async def _barge_in(self, onset: float, now: float) -> None:
        words = self.turns.text
        if words and is_backchannel(words):
            self.event("backchannel", words[:100])
            return
        rec = BargeInRecord(onset=onset - self.call.t0)
        reply = self.speaking
        heard_before = self._heard_text(reply) if reply is not None else ""
        current = self.pacer.current
        heard = await self.pacer.clear()  # first: stop the audio at Twilio
        rec.clear_sent = trio.current_time() - self.call.t0
        if current is not None and current.marks:
            self.barge_by_utterance[current.id] = rec
        if heard is not None:
            rec.heard_ms = heard.heard_ms
        if reply is not None and not reply.finished.is_set():
            if reply.speaker is not None and reply.speaker.current is not None:
                rec.cancelled.append("tts")
            if reply.kind == "llm" and not reply.llm_done:
                rec.cancelled.append("llm")
            reply.scope.cancel()
        heard_text = self._heard_text(reply) if reply is not None else heard_before
        unheard = ""
        if reply is not None:
            full = " ".join(reply.sent_spoken) if reply.kind == "llm" else reply.fixed
            unheard = " ".join(full.split()[len(heard_text.split()):])
            self._cut_history(reply, heard_text)
        self.record.barge_ins.append(rec)
        self.barge = BargeIn(rec, reply, heard_text, unheard, now)
        self.turns.open = True
        self.event("barge_in", f"heard {rec.heard_ms:.0f} ms: {heard_text[:120]}")
        self.poke()

    def _heard_text(self, reply: Reply) -> str:
        parts = []
        for uid in reply.utterance_ids:
            u = self.pacer.utterances.get(uid)
            if u is not None:
                h = self.pacer.heard(u)
                text = heard_words(u.alignment, h.heard_ms) if u.alignment else h.text
                if text:
                    parts.append(text)
        return " ".join(parts)

    def _cut_history(self, reply: Reply, heard: str) -> None:
        if reply.turn is not None:
            reply.turn.interrupted = True
            reply.turn.agent_text_heard = heard
            reply.turn.agent_text_generated = (reply.generated.strip() if reply.kind == "llm" else reply.fixed)
        if reply.kind in ("llm", "resume") and reply.committed:
            if reply.kind == "resume":
                self._extend_history(reply, heard)
            elif reply.history_msg is not None:  # generated in full, cut while it was still playing
                self.history.set_assistant(reply.history_msg, heard)
            elif heard:
                reply.history_msg = self.history.add_assistant(heard)

    def _extend_history(self, resume: Reply, words: str) -> None:
        """A resumed reply's words join what the caller heard of the interrupted one."""
        if resume.history_msg is not None:
            self.history.set_assistant(resume.history_msg, f"{resume.history_base} {words}")
        elif words:
            resume.history_msg = self.history.add_assistant(words)

    def _settle_barge_in(self, now: float) -> None:
        b = self.barge
        if b is None:
            return
        words = self.turns.text
        if words and not self.turns.voicing and is_backchannel(words):
            self.turns.discard()
            self._barge_outcome("false")
        elif not words and now >= b.record.onset + self.call.t0 + FALSE_BARGE_S and not self.turns.voicing:
            self._barge_outcome("false")

    def _barge_outcome(self, outcome: str) -> None:
        b, self.barge = self.barge, None
        b.record.outcome = outcome
        self.event("barge_in_" + outcome, "")
        if outcome == "false" and b.unheard and b.reply is not None:
            # nobody was really talking: say the rest rather than leave dead air
            resume = Reply(self, kind="resume", text=b.unheard)
            resume.history_msg = b.reply.history_msg
            resume.history_base = b.reply.history_msg["content"] if b.reply.history_msg is not None else ""
            resume.turn = None
            self.speaking = resume
            self.nursery.start_soon(self._run_reply, resume)
            resume.commit(b.reply.turn)

    # ------------------------------------------------------------ watchdog
    async def _watchdog(self) -> None:
        # It sleeps until the moment something could be judged, not on a fixed beat: a wake-up per
        # call every 100 ms was ~2% of the server's CPU at 130 calls.
        fired = None
        while True:
            await trio.sleep_until(self._next_watch(trio.current_time()))
            now = trio.current_time()
            att = self._owing_attempt()
            # dead air: the voice owes audio for text it was sent, and the line has gone quiet
            if att is not None and att is not fired and not self.pacer.playing(now):
                dry = now - max(self.pacer.play_end, att.owed_since or now)
                if dry >= DEAD_AIR_S - 1e-9:
                    att.fail_reason = f"watchdog: {dry:.1f} s of dead air while speaking"
                    self.event("watchdog:dead_air", f"dead air on {att.voice.name}: switching voice")
                    att.scope.cancel()
                    fired = att
            if (self.stt is not None and now - self.last_stt_at > STT_SILENT_S
                    and self.voiced_since_stt_ms >= 500):
                self.event("watchdog:stt_silent", f"STT silent {now - self.last_stt_at:.1f} s while the caller spoke;"
                           " restarting the stream")
                self._restart_stt()

    def _owing_attempt(self):
        """The TTS attempt of the reply speaking, if it has started and owes audio for text it was sent."""
        reply = self.speaking
        att = reply.speaker.current if reply is not None and reply.speaker is not None else None
        return att if att is not None and att.first_audio_at is not None and att.owes_audio else None

    def _next_watch(self, now: float) -> float:
        """The next moment the watchdog could have something to judge. A voice that starts owing audio
        meanwhile cannot have been dry for DEAD_AIR_S before the idle step is up."""
        t = now + IDLE_WATCHDOG_PERIOD_S
        att = self._owing_attempt()
        if att is not None:
            t = min(t, max(self.pacer.play_end, att.owed_since or now) + DEAD_AIR_S)
        stt_due = self.last_stt_at + STT_SILENT_S
        if stt_due > now:
            t = min(t, stt_due + 1e-6)
        return max(t, now + FRAME_S)  # after a verdict, give the speaker a moment to act on it

    # ------------------------------------------------------------ the record
    def _finish_record(self) -> None:
        usage = self.record.usage
        stt = self.stt
        usage.stt_seconds = self._stt_seconds_closed + (stt.audio_seconds if stt is not None else 0.0)
        usage.twilio_seconds = trio.current_time() - self.call.t0
        # the price table is keyed by these (unknown names are priced at the paid default)
        usage.stt_provider = getattr(self.shared.providers.stt, "name", "")
        usage.llm_model = getattr(self.llm, "model", "") or getattr(self.llm, "name", "")
        if self.spec_starts:
            self.record.events.append(EventRecord(
                "speculative_summary", usage.twilio_seconds,
                f"starts={self.spec_starts} hits={self.spec_hits} wasted_tokens={self.spec_wasted_tokens}"))
        for uid, turn in self.turn_by_utterance.items():  # no mark echoed: the sent time is all we know
            u = self.pacer.utterances.get(uid)
            if u is not None and turn.first_frame_sent is None:
                turn.first_frame_sent = self.rel(u.first_sent_at)
