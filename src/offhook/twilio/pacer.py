"""Paced playback to Twilio with marks, and the playback ledger.

One process-wide `Ticker` serves every call's `Pacer` on a shared 20 ms grid (one timer for all calls,
not a sleeping task each), the calls spread over phases of the period so no tick serves them all. A
pacer keeps Twilio's buffer `lead` seconds ahead of real time: frames for a new utterance go out at
once up to the lead (first audio is never held for a tick), then one per tick. With a socket that
can be written from synchronous code (`send_now`), the ticker writes each pacer's due frames in its
own task step: under load, waking hundreds of pacer tasks put each frame behind a scheduler batch of
reader tasks (the frame's lateness). A write that would wait, and sockets without `send_now`, are
left to the pacer's own task, so one slow socket never holds up the others. Every `mark_every` frames, and at the end of each utterance, it sends a `mark`; Twilio
echoes a mark when the audio before it has played, and echoes all pending marks after a `clear`.

The ledger models Twilio's playout: each frame is scheduled to play at max(end of the previous frame,
time sent). From it the agent can ask, at any moment, whether the caller is still hearing agent
audio and how much of an utterance (ms, and text via the TTS alignment) they heard. Echoed marks
are the ground truth that the estimate never goes below.
"""
from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Awaitable, Callable

import trio

from offhook.twilio.protocol import OutboundBuilder

FRAME_S = 0.020


class Ticker:
    """The process-wide 20 ms playback clock. Its period is split into `slots` phases (4: one every
    5 ms), each with its own pacers: a tick serves (writes for, or wakes) a fraction of the calls, so
    the last frame written on a tick is not late in proportion to all the calls. Still one timer task
    for the process; every slot ticks every `period`. It rests while no pacer waits (an idle server
    does not wake) and rejoins the same grid when one does; a phase with no waiters is skipped, so a
    single call wakes it once per period, on slot 0's grid. `wait` parks a task until its slot's next
    tick; `serve` has the tick call a pacer's `on_tick` in the ticker's own task."""

    def __init__(self, period: float = FRAME_S, slots: int = 4):
        if slots < 1:
            raise ValueError("slots must be >= 1")
        self.period = period
        self.slots = slots
        self._lots = [trio.lowlevel.ParkingLot() for _ in range(slots)]
        self._members = [0] * slots  # pacers assigned to each slot
        self._resume: trio.Event | None = None
        self._origin = 0.0
        self._done = -1           # index of the last phase tick fired (phase j is at _at(j))
        self._target = -1         # the phase tick the timer is set for
        self._timer: trio.CancelScope | None = None
        self._served: list[dict[Pacer, None]] = [{} for _ in range(slots)]  # ordered sets
        self.ticks = 0

    def _at(self, j: int) -> float:
        # slot 0 lands exactly where a single-slot grid would (origin + k * period, no float drift)
        k, s = divmod(j, self.slots)
        return self._origin + k * self.period + s * self.period / self.slots

    def _next_of(self, slot: int, after: int) -> int:
        """The first phase tick of `slot` after phase tick `after`."""
        return after + 1 + (slot - after - 1) % self.slots

    def _now_index(self) -> int:
        return math.floor((trio.current_time() - self._origin) * self.slots / self.period)

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        self._origin = trio.current_time()
        task_status.started()
        while True:
            while not self.waiting:  # (the waiter that woke us may have been cancelled since)
                self._resume = trio.Event()
                await self._resume.wait()
                self._done = max(self._done, self._now_index())
            self._target = min(self._next_of(s, self._done) for s in range(self.slots) if self.waiting_on(s))
            # a pacer joining a slot whose tick comes sooner moves this deadline earlier (see wait)
            with trio.CancelScope(deadline=self._at(self._target)) as self._timer:
                await trio.sleep_forever()
            self._timer = None
            # woken late (a long task step): every slot whose tick has passed fires now, once, rather
            # than one phase per trip through the scheduler
            last = max(self._target, self._now_index())
            for j in range(max(self._target, last - self.slots + 1), last + 1):
                if j == self._target or self.waiting_on(j % self.slots):
                    self._fire(j % self.slots, self._at(j))
            self._done = last

    def _fire(self, slot: int, due: float) -> None:
        self.ticks += 1
        self._lots[slot].unpark_all()
        served = self._served[slot]
        for pacer in list(served):
            if not pacer.on_tick():
                served.pop(pacer, None)
            self._served_one(pacer, due)

    def _served_one(self, pacer: Pacer, due: float) -> None:
        """After each pacer a tick served (the load benchmark's probe measures here)."""

    def join(self) -> int:
        """A slot for a new pacer: the least loaded (the first pacer gets slot 0)."""
        slot = self._members.index(min(self._members))
        self._members[slot] += 1
        return slot

    def leave(self, slot: int, pacer: Pacer | None = None) -> None:
        self._members[slot] -= 1
        if pacer is not None:
            self._served[slot].pop(pacer, None)

    def _joining(self, slot: int) -> None:
        if self._resume is not None:
            self._resume.set()
        if self._timer is not None:
            j = self._next_of(slot, max(self._done, self._now_index()))
            if j < self._target:
                self._target = j
                self._timer.deadline = self._at(j)

    async def wait(self, slot: int = 0) -> None:
        """Until the next tick of `slot`."""
        self._joining(slot)
        await self._lots[slot].park()

    def serve(self, slot: int, pacer: Pacer) -> None:
        """Call `pacer.on_tick()` on each tick of `slot` until it returns False."""
        self._joining(slot)
        self._served[slot][pacer] = None

    @property
    def waiting(self) -> int:
        return sum(len(lot) for lot in self._lots) + sum(map(len, self._served))

    def waiting_on(self, slot: int) -> int:
        return len(self._lots[slot]) + len(self._served[slot])


@dataclass
class Utterance:
    """Ledger entry: what was sent of one agent utterance and what the caller heard."""
    id: int
    text: str = ""
    alignment: list[tuple[str, float, float]] = field(default_factory=list)  # (text, start_ms, end_ms)
    enqueued: int = 0
    sent: int = 0
    play_starts: list[float] = field(default_factory=list)  # scheduled play time of each sent frame
    marks: dict[str, int] = field(default_factory=dict)     # mark name -> frames before it
    confirmed_frames: int = 0                               # from echoed marks
    ended: bool = False            # no more audio will be enqueued
    end_mark_echoed: bool = False
    cleared_at: float | None = None
    heard_ms_at_clear: float | None = None
    first_sent_at: float | None = None

    @property
    def sent_ms(self) -> float:
        return self.sent * FRAME_S * 1000

    def heard_ms(self, now: float) -> float:
        """Estimated audio played by `now` (ms), never less than what echoed marks confirm."""
        if self.heard_ms_at_clear is not None:
            return self.heard_ms_at_clear
        i = bisect.bisect_right(self.play_starts, now)  # frames that started playing
        ms = 0.0
        if i:
            ms = (i - 1) * FRAME_S * 1000 + min(FRAME_S, now - self.play_starts[i - 1]) * 1000
        return max(ms, self.confirmed_frames * FRAME_S * 1000)

    def heard_text(self, heard_ms: float) -> str:
        """The words whose audio ended within heard_ms (a word cut mid-way counts as not heard)."""
        if not self.alignment:
            if not self.text or self.enqueued == 0:
                return ""
            # no alignment: proportional estimate on word boundaries
            frac = min(1.0, heard_ms / max(1.0, self.enqueued * FRAME_S * 1000))
            words = self.text.split()
            return " ".join(words[: int(len(words) * frac + 1e-9)])
        # alignment pieces (characters or words) concatenate to the spoken text
        heard = [t for t, _, end in self.alignment if end <= heard_ms]
        text = "".join(heard)
        rest = self.alignment[len(heard):]
        nxt = rest[0][0][:1] if rest else ""
        if text and nxt and not text[-1].isspace() and (nxt.isalnum() or nxt in "'’-"):
            # the next unheard piece continues the last word: a word cut mid-way was not heard (its
            # trailing punctuation is silent, so a word is heard once its letters have played)
            text = text[: text.rfind(" ") + 1] if " " in text else ""
        return text.rstrip()


@dataclass(frozen=True)
class Heard:
    utterance_id: int
    heard_ms: float
    sent_ms: float
    text: str


# A message sent from synchronous code: True (written), False (nothing written: send it the usual way),
# or a coroutine function that writes what the socket did not take, to be awaited before anything else
SendNow = Callable[[str], "bool | Callable[[], Awaitable[None]]"]


class Pacer:
    def __init__(self, send: Callable[[str], Awaitable[None]], builder: OutboundBuilder, ticker: Ticker,
                 *, lead: float = 0.08, mark_every: int = 10, send_lock: trio.Lock | None = None,
                 call=None, send_now: SendNow | None = None):
        if not (0.0 <= lead <= 1.0):
            raise ValueError("lead must be between 0 and 1 s")
        if mark_every < 1:
            raise ValueError("mark_every must be >= 1")
        self._send = send
        self._send_now = send_now
        self.builder = builder
        self.ticker = ticker
        self.lead = lead
        self.mark_every = mark_every
        self.lock = send_lock or trio.Lock()
        # the MediaCall we play for: its `recorder` (when sampled) gets every frame sent, on its clock t0
        self.call = call
        self._queue: deque[tuple[bytes, Utterance]] = deque()
        self._backlog: deque[str] = deque()  # taken on a tick, not written: the task sends these first
        self._rest: Callable[[], Awaitable[None]] | None = None  # a message the tick half wrote
        self._work = trio.Event()
        self._served = trio.Event()
        self._error: Exception | None = None  # raised on a tick: re-raised in our own task
        self._next_id = 0
        self.current: Utterance | None = None
        self.utterances: dict[int, Utterance] = {}
        self.play_end = 0.0          # when Twilio's buffer runs dry, by the model
        self.frames_sent = 0
        self.clear_latencies: list[float] = []  # clear() call -> clear message written (s)
        self.late_frames = 0         # frames sent after their scheduled play time (buffer ran dry)
        self.slot: int | None = None  # our phase of the ticker's period, taken when we first wait

    # ---------------------------------------------------------------- producer side
    def start_utterance(self, text: str = "") -> Utterance:
        if self.current is not None and not self.current.ended:
            self.end_utterance()
        self._next_id += 1
        u = Utterance(self._next_id, text)
        self.utterances[u.id] = u
        self.current = u
        # keep the ledger bounded on long calls
        while len(self.utterances) > 64:
            self.utterances.pop(next(iter(self.utterances)))
        return u

    def enqueue(self, frames: list[bytes]) -> None:
        u = self.current
        if u is None or u.ended:
            u = self.start_utterance()
        for f in frames:
            if len(f) != 160:
                raise ValueError(f"frames must be 160 bytes of mu-law, got {len(f)}")
            self._queue.append((f, u))
        u.enqueued += len(frames)
        if frames:
            self._work.set()

    def add_alignment(self, items) -> None:
        if self.current is not None and items:
            self.current.alignment.extend(items)

    def add_text(self, text: str) -> None:
        if self.current is not None:
            self.current.text += text

    def end_utterance(self) -> None:
        u = self.current
        if u is None or u.ended:
            return
        u.ended = True
        self._queue.append((b"", u))  # end-of-utterance marker: send the final mark after its audio
        self._work.set()

    # ---------------------------------------------------------------- state
    @property
    def blocked(self) -> bool:
        """A write on a tick would have waited: our task is writing the rest."""
        return bool(self._backlog) or self._rest is not None

    @property
    def queued_frames(self) -> int:
        return sum(1 for f, _ in self._queue if f)

    def playing(self, now: float | None = None) -> bool:
        """Is the caller (still) hearing agent audio, or about to?"""
        now = trio.current_time() if now is None else now
        if any(f for f, _ in self._queue):
            return True
        return now < self.play_end

    def heard(self, utterance: Utterance | None = None, now: float | None = None) -> Heard | None:
        u = utterance or self.current
        if u is None:
            return None
        now = trio.current_time() if now is None else now
        ms = u.heard_ms(now)
        return Heard(u.id, ms, u.sent_ms, u.heard_text(ms))

    # ---------------------------------------------------------------- Twilio echoes
    def on_mark(self, name: str) -> Utterance | None:
        """Feed every mark Twilio echoes. Returns the utterance it belongs to (None if unknown)."""
        uid, _, pos = name.partition(":")
        try:
            u = self.utterances.get(int(uid))
        except ValueError:
            return None
        if u is None or name not in u.marks:
            return None
        if u.cleared_at is not None:
            return u  # echoed because of clear, not because it played
        u.confirmed_frames = max(u.confirmed_frames, u.marks[name])
        if pos == "end":
            u.end_mark_echoed = True
        return u

    # ---------------------------------------------------------------- barge-in
    async def clear(self) -> Heard | None:
        """Send Twilio `clear`, drop everything queued, and say what the caller heard."""
        t0 = trio.current_time()
        u = self.current
        self._queue.clear()
        self._backlog.clear()
        heard = None
        if u is not None:
            ms = u.heard_ms(t0)
            heard = Heard(u.id, ms, u.sent_ms, u.heard_text(ms))
            u.heard_ms_at_clear = ms
            u.cleared_at = t0
            u.ended = True
        self.play_end = t0
        if self.call is not None and self.call.recorder is not None:
            self.call.recorder.clear(t0 - self.call.t0)
        await self._send_locked(self.builder.clear())
        self.clear_latencies.append(trio.current_time() - t0)
        return heard

    # ---------------------------------------------------------------- the sending task
    async def run(self) -> None:
        try:
            while True:
                if not (self._queue or self._backlog or self._rest):
                    self._work = trio.Event()
                    await self._work.wait()
                await self._flush()
                await self._send_due()
                if self._queue:
                    if self.slot is None:
                        self.slot = self.ticker.join()
                    self._served = trio.Event()
                    self.ticker.serve(self.slot, self)
                    await self._served.wait()
                    if self._error is not None:
                        raise self._error
        finally:
            if self.slot is not None:
                self.ticker.leave(self.slot, self)
                self.slot = None

    def on_tick(self) -> bool:
        """The ticker's call on each tick of our slot: write what is due without yielding. False hands
        the rest to our task (nothing queued any more, or a write that would wait), which is woken."""
        try:
            keep = self._tick()
        except Exception as e:  # a fault of this call's socket or recorder ends this call, not the ticker
            self._error = e
            keep = False
        if not keep:
            self._served.set()
        return keep

    def _tick(self) -> bool:
        if self._send_now is None or self.lock.locked():
            return False
        while (due := self._take(trio.current_time())) is not None:
            texts = due[1]
            for i, text in enumerate(texts):
                sent = self._send_now(text)
                if sent is True:
                    continue
                if sent is not False:  # half written: its rest first, then the messages after it
                    self._rest = sent
                    i += 1
                self._backlog.extend(texts[i:])
                return False
        return bool(self._queue)

    async def _flush(self) -> None:
        if self._rest is not None:
            rest, self._rest = self._rest, None
            await rest()
        while self._backlog:
            await self._send_locked(self._backlog.popleft())

    async def _send_due(self) -> None:
        now = trio.current_time()
        while (due := self._take(now)) is not None:
            u, texts = due
            for text in texts:
                await self._send_locked(text)
                if u.cleared_at is not None:
                    return  # cleared while we were sending

    def _take(self, now: float) -> tuple[Utterance, list[str]] | None:
        """The next frame due by `now` off the queue, entered in the ledger as sent, and its messages
        (its media, and a mark when one falls after it; the end of an utterance is its mark alone)."""
        # 1 µs of slack: the schedule is built from float sums of 20 ms steps
        if not self._queue or self.play_end >= now + self.lead - 1e-6:
            return None
        frame, u = self._queue.popleft()
        if not frame:
            return u, [self._mark(u, f"{u.id}:end")]
        start = max(self.play_end, now)
        if self.play_end and start > self.play_end + 1e-9 and u.sent:
            self.late_frames += 1
        self.play_end = start + FRAME_S
        if self.call is not None and self.call.recorder is not None:
            self.call.recorder.agent(frame, start - self.call.t0)
        u.play_starts.append(start)
        if u.first_sent_at is None:
            u.first_sent_at = now
        u.sent += 1
        self.frames_sent += 1
        texts = [self.builder.media(frame)]
        if u.sent % self.mark_every == 0:
            texts.append(self._mark(u, f"{u.id}:{u.sent}"))
        return u, texts

    def _mark(self, u: Utterance, name: str) -> str:
        u.marks[name] = u.sent
        return self.builder.mark(name)

    async def _send_locked(self, text: str) -> None:
        # The lock orders our messages against other senders on the socket. Taken without a checkpoint
        # when free: the send is the checkpoint, and `async with lock` would add a yield per frame (~3 µs).
        lock = self.lock
        try:
            lock.acquire_nowait()
        except trio.WouldBlock:
            await lock.acquire()
        try:
            await self._send(text)
        finally:
            lock.release()
