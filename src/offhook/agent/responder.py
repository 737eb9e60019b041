"""One agent turn in its own cancel scope: LLM deltas -> clauses -> spoken form -> TTS -> pacer.

A reply may start before the caller's turn is committed (speculation): the LLM streams and its
clauses queue up, but nothing reaches TTS until `commit()`. Cancelling `scope` (barge-in, a changed
transcript, the call ending) closes the LLM stream and the TTS utterance on the way out, so no token
after that point is ever spoken. LLM failures are counted by the call; below the handoff threshold
a request that failed before its first token is retried (the stall phrase covers the wait), at the
threshold the reply speaks the handoff line instead.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

import trio

from offhook.agent.chunker import ClauseChunker
from offhook.agent.fallback_tts import Speaker, TextFeed
from offhook.agent.spoken import to_spoken
from offhook.providers.base import LLMError, LLMTimeout, LLMUsage

if TYPE_CHECKING:  # pragma: no cover
    from offhook.agent.session import AgentCall
    from offhook.observe.record import TurnRecord


class Reply:
    def __init__(self, agent: "AgentCall", *, kind: str, text: str = "", messages: list[dict] | None = None,
                 key: str = "") -> None:
        self.agent = agent
        self.kind = kind                  # "llm" | "greeting" | "resume" | "confirm" | "handoff"
        self.fixed = text                 # the words of a non-LLM reply
        self.messages = messages
        self.key = key                    # the caller's words this reply answers
        self.scope = trio.CancelScope()
        self._committed = trio.Event()
        self.committed_at: float | None = None
        self.feed = TextFeed()
        self.speaker: Speaker | None = None
        self.turn: "TurnRecord | None" = None
        self.generated = ""               # the LLM's own words so far
        self.sent_spoken: list[str] = []  # spoken-form clauses, in order
        self.usages: list[LLMUsage] = []
        self.deltas = 0
        self.started_at = trio.current_time()
        self.first_token_at: float | None = None
        self.first_clause_at: float | None = None
        self.stall_utterance: int | None = None
        self.handoff = False
        self.llm_done = False
        self.finished = trio.Event()
        self.history_msg: dict | None = None   # this reply's assistant message in the history
        self.history_base = ""                 # (a resume) what that message said before it
        self.cpu_s = 0.0                  # wall time of offhook's own work on this reply's critical path

    # ------------------------------------------------------------ control
    def commit(self, turn: "TurnRecord | None" = None) -> None:
        self.turn = turn
        self.committed_at = trio.current_time()
        self._committed.set()

    @property
    def committed(self) -> bool:
        return self._committed.is_set()

    @property
    def utterance_ids(self) -> list[int]:
        ids = list(self.speaker.utterance_ids) if self.speaker else []
        return ids

    @property
    def speaking_started(self) -> bool:
        return bool(self.speaker and self.speaker.utterance_ids)

    @property
    def output_tokens(self) -> int:
        return max(sum(u.output_tokens for u in self.usages), self.deltas)

    # ------------------------------------------------------------ the task
    async def run(self) -> None:
        try:
            with self.scope:
                async with trio.open_nursery() as nursery:
                    if self.kind == "llm":
                        nursery.start_soon(self._generate)
                        nursery.start_soon(self._stall)
                    else:
                        self.feed.put(self.fixed)
                        self.feed.close()
                    await self._committed.wait()
                    self.speaker = Speaker(self.agent.voices, self.agent.pacer, self.feed,
                                           first_audio_timeout=self.agent.config.tts_first_audio_timeout_s,
                                           levels=self.agent.levels, on_event=self.agent.event,
                                           on_first_audio=self._on_first_audio,
                                           openers=self.agent.shared.openers if self.kind == "llm" else None)
                    await self.speaker.run()
                    nursery.cancel_scope.cancel()  # said and done: no stall timer left behind
        finally:
            self.finished.set()

    def _on_first_audio(self, att) -> None:
        if self.turn is not None and self.turn.tts_first_audio is None:
            self.turn.tts_first_audio = self.agent.rel(att.first_audio_at)
            self.turn.tts_provider = att.voice.name
            self.agent.turn_by_utterance[att.utterance_id] = self.turn

    async def _generate(self) -> None:
        agent = self.agent
        timeout = agent.config.llm_timeout_s
        try:
            while True:
                chunker = ClauseChunker(max_words=12)
                deadline = trio.CancelScope(deadline=trio.current_time() + timeout)
                failure: BaseException | None = None
                try:
                    with deadline:
                        async with agent.llm.stream(self.messages, system=agent.system_prompt) as stream:
                            self.usages.append(stream.usage)
                            async for delta in stream:
                                t_cpu = time.perf_counter()
                                now = trio.current_time()
                                deadline.deadline = now + timeout
                                if self.first_token_at is None:
                                    self.first_token_at = now
                                    agent.llm_succeeded()
                                    if self.turn is not None:
                                        self.turn.llm_first_token = agent.rel(now)
                                self.deltas += 1
                                self.generated += delta
                                for clause in chunker.feed(delta):
                                    self._put(clause)
                                if not self.speaking_started:  # offhook's own work before the first audio
                                    self.cpu_s += time.perf_counter() - t_cpu
                    if deadline.cancelled_caught:
                        failure = LLMTimeout(f"no LLM token within {timeout:g} s")
                except* (LLMError, OSError) as group:
                    failure = group.exceptions[0]
                if failure is None:
                    tail = chunker.flush()
                    if tail:
                        self._put(tail)
                    return
                handoff = agent.llm_failed(failure)
                if handoff:
                    self.handoff = True
                    self.generated = ""
                    self.feed.put(agent.config.handoff_line)
                    return
                if self.first_token_at is not None:
                    # the reply broke mid-way: what was said stands; the caller can ask again
                    tail = chunker.flush()
                    if tail:
                        self._put(tail)
                    return
                await trio.sleep(0.05)
        finally:
            self.llm_done = True
            self.feed.close()

    def _put(self, clause: str) -> None:
        if self.first_clause_at is None:
            self.first_clause_at = trio.current_time()
        spoken = to_spoken(clause)
        self.sent_spoken.append(spoken)
        self.feed.put(spoken)

    async def _stall(self) -> None:
        await self._committed.wait()
        await trio.sleep_until(self.committed_at + self.agent.config.stall_after_s)
        # never over a reply that has started, and at most once per turn
        if self.first_token_at is not None or (self.speaker and self.speaker.utterance_ids):
            return
        uid = self.agent.play_stall()
        if uid is not None:
            self.stall_utterance = uid
            if self.turn is not None:
                self.turn.stalled = True
