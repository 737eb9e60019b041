"""`offhook demo`: one whole scripted phone call on this machine, offline, with no keys.

It starts the real server on loopback (a free port) with the embedded providers (PocketSphinx,
eSpeak NG, the scripted receptionist of the bundled sample business), the agent and the monitoring
(SQLite under the data dir), then places the bundled scripted call with the simulated caller, whose
voice is the local TTS, so the recogniser hears real speech. It prints the conversation as it
happens with each reply's latency, then a summary: first-audio P50/P95, barge-in reaction, what the
call would cost at real-provider prices, where the stereo recording and the call record are, and
the dashboard URL. It exits 0 when the call went as scripted (every line answered, the opening hours
given, the phone number read back in spoken form, the barge-in cleared) and 1 with the reason when
not. `--keep-serving` leaves the server and dashboard up; `--real` runs the same call against the
real providers when their keys are set.
"""
from __future__ import annotations

import argparse
import math
import os
import re
import secrets
import sys
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Callable
from urllib.parse import quote

import trio
import yaml

from offhook.observe.cost import CostLedger
from offhook.observe.record import CallRecord, Usage
from offhook.server.config import Config, ConfigError
from offhook.sim.caller import CallResult, SimCaller
from offhook.sim.scenario import Scenario, ScenarioError, from_dict

REAL_KEYS = ("DEEPGRAM_API_KEY", "ANTHROPIC_API_KEY", "ELEVENLABS_API_KEY")
# what the offline call is priced as: the real providers offhook uses when keys are set
REAL_STT, REAL_LLM, REAL_TTS = "deepgram", "anthropic", "elevenlabs"
CHARS_PER_TOKEN = 4.0  # the scripted receptionist counts no tokens: estimate them as an LLM would bill


def bundled_scenario() -> Path:
    return Path(str(resources.files("offhook") / "data" / "demo_scenario.yaml"))


def load_scenario(path: str | Path) -> tuple[Scenario, dict]:
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except OSError as e:
        raise ScenarioError(f"cannot read the scenario {p}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ScenarioError(f"{p}: not valid YAML: {e}") from None
    scenario = from_dict(data)
    expect = data.get("expect") or {}
    if not isinstance(expect, dict):
        raise ScenarioError(f"{p}: 'expect' must be a mapping")
    return scenario, expect


# ---------------------------------------------------------------- outcome checks
@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower().replace("-", " "))


def _reply_to(record: CallRecord | None, line: str) -> str:
    """What the caller heard of the agent's reply to the turn that best matches `line`."""
    if record is None:
        return ""
    want = set(_words(line))
    best, score = None, 0.0
    for t in record.turns:
        got = set(_words(t.caller_text))
        s = len(want & got) / max(1, len(want))
        if s > score:
            best, score = t, s
    if best is None or score < 0.5:
        return ""
    return best.agent_text_heard or best.agent_text_generated


def check_outcome(result: CallResult, record: CallRecord | None, expect: dict) -> list[Check]:
    checks: list[Check] = []
    if result.error:
        return [Check("call connected", False, result.error)]
    # the greeting: agent audio the caller heard before it finished its first line
    first_end = result.lines[0].end if result.lines else result.duration
    greeting = result.agent_heard_between(0.0, first_end)
    checks.append(Check("agent greeted the caller", greeting > 0,
                        f"{greeting:.1f} s of agent audio before the caller's first line" if greeting else
                        "the caller heard nothing from the agent before its first line"))
    barge_lines = {b.text for b in result.barge_ins}
    unanswered = [l.text for l in result.lines if l.first_agent_audio is None and l.text not in barge_lines
                  and not _is_goodbye(l.text)]
    checks.append(Check("agent answered every line", not unanswered,
                        f"no agent audio after: {'; '.join(repr(u) for u in unanswered)}" if unanswered else
                        f"{len(result.lines)} lines"))
    for a in expect.get("answers") or []:
        reply = _reply_to(record, a["line"])
        hit = [m for m in a.get("mentions", []) if m.lower() in reply.lower()]
        checks.append(Check(f"answer to {a['line']!r} mentions {' / '.join(a.get('mentions', []))}", bool(hit),
                            f"heard: {reply[:120]!r}" if reply else "no matching turn was recorded"))
    if expect.get("readback"):
        checks.append(_readback_check(record, str(expect["readback"])))
    for b in result.barge_ins:
        ok = b.clear_received is not None
        detail = (f"clear {b.clear_latency * 1000:.0f} ms after onset, agent audio stopped "
                  f"{(b.audio_stopped - b.onset) * 1000:.0f} ms after onset") if ok else \
            "the agent kept talking: no clear was received"
        checks.append(Check(f"barge-in {b.text!r} cleared the agent's audio", ok, detail))
    hung = result.ended_by == "caller"
    checks.append(Check("caller hung up at the end", hung, f"ended by {result.ended_by or '?'}"))
    if record is not None:
        checks.append(Check("call record stored and complete", record.complete,
                            f"end reason {record.end_reason.value}"))
    else:
        checks.append(Check("call record stored and complete", False, "no record in the store"))
    return checks


_DIGIT_WORDS = {w: str(i) for i, w in enumerate("zero one two three four five six seven eight nine".split())}
_DIGIT_WORDS["oh"] = "0"


def spoken_digit_runs(text: str) -> list[str]:
    """Digit strings spoken as words ("two one three, four ..." -> "2134..."), longest first."""
    runs, cur = [], ""
    for w in _words(text):
        if w in _DIGIT_WORDS:
            cur += _DIGIT_WORDS[w]
        else:
            if cur:
                runs.append(cur)
            cur = ""
    if cur:
        runs.append(cur)
    return sorted(runs, key=len, reverse=True)


def _readback_check(record: CallRecord | None, said: str) -> Check:
    """The agent read a phone number back in spoken form (digit words, none as numerals). Whether it
    is the number the caller said depends on the recogniser: offline, PocketSphinx mishears digits
    in about one number of ten from the eSpeak voice; that is reported, not hidden."""
    for t in record.turns if record else []:
        heard = t.agent_text_heard or t.agent_text_generated
        runs = [r for r in spoken_digit_runs(heard) if len(r) == 10 or len(r) == 11 and r[0] == "1"]
        if runs:
            got = runs[0]
            if got == said[-len(got):] or got == said:
                return Check("phone number read back in spoken form", True, f"heard: {heard[:120]!r}")
            return Check("phone number read back in spoken form", True,
                         f"read back {got}, the caller said {said}: the recogniser misheard "
                         f"(recognised: {t.caller_text!r})")
    return Check("phone number read back in spoken form", False, "no phone number was read back")


def _is_goodbye(text: str) -> bool:
    return bool(set(_words(text)) & {"goodbye", "bye"})


# ---------------------------------------------------------------- numbers for the summary
def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(p / 100 * len(s)) - 1))]


# the embedded offline providers (by the names their usage is recorded under) and the real provider
# that does the same job when keys are set: an offline call is priced as if they had served it
OFFLINE_STAND_INS = {"pocketsphinx": REAL_STT, "receptionist": REAL_LLM, "scripted-receptionist": REAL_LLM,
                     "espeak": REAL_TTS}


def real_price_usage(record: CallRecord, system_chars: int = 2000) -> tuple[Usage, bool]:
    """The call's usage as the real providers bill it. Returns (usage, tokens_estimated).

    What a real provider metered stays as metered (its model's price from the [prices] table, its
    characters). A slot served only by an embedded offline provider is priced as the real provider
    standing behind it; the scripted receptionist counts no tokens, so they are estimated then. A
    real call whose last-resort eSpeak voice spoke a line keeps that line free, as it really is."""
    u = record.usage
    stt = OFFLINE_STAND_INS.get(u.stt_provider, u.stt_provider)
    llm = OFFLINE_STAND_INS.get(u.llm_model, u.llm_model)
    tts = dict(u.tts_characters)
    if all(name in OFFLINE_STAND_INS for name in tts):  # no real voice spoke: all of it priced as one
        tts = {REAL_TTS: sum(tts.values()) or sum(len(t.agent_text_generated) for t in record.turns)}
    estimated = not (u.llm_input_tokens or u.llm_output_tokens)
    inp, out, history = u.llm_input_tokens, u.llm_output_tokens, 0
    if estimated:  # one request per turn: system prompt + the conversation so far in, the reply out
        for t in record.turns:
            history += len(t.caller_text)
            inp += int((system_chars + history) / CHARS_PER_TOKEN)
            out += int(len(t.agent_text_generated) / CHARS_PER_TOKEN)
            history += len(t.agent_text_generated)
    return replace(u, stt_provider=stt, llm_model=llm, tts_characters=tts,
                   llm_input_tokens=inp, llm_output_tokens=out,
                   stt_seconds=u.stt_seconds or (record.duration or 0.0),
                   twilio_seconds=u.twilio_seconds or (record.duration or 0.0)), estimated


@dataclass
class DemoOutcome:
    result: CallResult
    record: CallRecord | None
    checks: list[Check]
    wav_path: str
    timeline_path: str
    store: str
    dashboard: str
    recording: str | None = None
    real_cost: dict = field(default_factory=dict)
    cost_estimated: bool = False

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def latencies(self) -> list[float]:
        return [l.latency for l in self.result.lines if l.latency is not None]


def render_summary(o: DemoOutcome) -> str:
    lat = o.latencies()
    ms = lambda v: "-" if v is None else f"{v * 1000:.0f} ms"
    rows = [("first agent audio after caller speech (P50 / P95)",
             f"{ms(pct(lat, 50))} / {ms(pct(lat, 95))}  over {len(lat)} replies, as the caller heard it")]
    for b in o.result.barge_ins:
        stopped = None if b.audio_stopped is None else b.audio_stopped - b.onset
        rows.append(("barge-in reaction (onset -> clear / -> audio stopped)", f"{ms(b.clear_latency)} / {ms(stopped)}"))
    if o.record is not None:
        srv = [t.first_audio_latency for t in o.record.turns if t.first_audio_latency is not None]
        rows.append(("server-side first audio (P50 / P95)", f"{ms(pct(srv, 50))} / {ms(pct(srv, 95))}"))
        for b in o.record.barge_ins:
            rows.append(("server-side barge-in: onset -> clear sent", f"{ms(b.reaction)}  ({b.outcome})"))
    if o.real_cost:
        parts = ", ".join(f"{k} ${v:.4f}" for k, v in o.real_cost.items() if k != "total")
        rows.append(("cost at real-provider prices", f"${o.real_cost['total']:.4f}  ({parts}"
                     f"{'; LLM tokens estimated' if o.cost_estimated else ''})"))
    rows.append(("call length", f"{o.result.duration:.1f} s"))
    rows.append(("stereo recording (caller left, agent right)", o.wav_path))
    if o.recording:
        rows.append(("server's recording", o.recording))
    rows.append(("call timeline (JSON)", o.timeline_path))
    rows.append(("call record", o.store))
    rows.append(("dashboard", o.dashboard))
    width = max(len(k) for k, _ in rows)
    out = ["", "summary", "-" * 7, *(f"{k:<{width}}  {v}" for k, v in rows), "", "checks", "-" * 6]
    out += [f"  [{'ok' if c.ok else 'FAILED'}] {c.name}{': ' + c.detail if c.detail else ''}" for c in o.checks]
    return "\n".join(out)


# ---------------------------------------------------------------- the live transcript
class Transcript:
    """Prints the conversation as it happens: each caller line when it starts, each agent reply
    (what the caller heard of it, from the live call record) once the caller moves on."""

    def __init__(self, out: Callable[[str], None]):
        self.out = out
        self.call = None              # the server's MediaCall, once it started
        self.printed: set[int] = set()
        self.barged = False           # a barge-in line is being said, or its reply awaited
        self.barge_line_said = False

    def on_call(self, call) -> None:
        self.call = call

    def flush(self, final: bool = False) -> None:
        """Print the replies that are over: all but the latest turn, and the latest too unless the
        caller is talking over it right now (then what the caller heard of it is not known yet)."""
        rec = getattr(self.call, "record", None)
        if rec is None:
            return
        last = rec.turns[-1].index if rec.turns else None
        for t in rec.turns:
            text = t.agent_text_heard or t.agent_text_generated
            if t.index in self.printed or not text or (not final and t.first_frame_sent is None):
                continue
            if t.index == last and self.barged and not final:
                continue
            self.printed.add(t.index)
            if t.caller_text:
                self.out(f"{'':>8}  (recognised: {t.caller_text!r})")
            lat = t.first_audio_latency
            tag = f"agent ({lat * 1000:.0f} ms)" if lat is not None else "agent"
            cut = "  [interrupted: this is what the caller heard]" if t.interrupted else ""
            at = (t.first_frame_sent if t.first_frame_sent is not None else 0.0)
            self.out(f"{at:7.1f}s  {tag}: {text}{cut}")

    def on_event(self, t: float, kind: str, detail: str) -> None:
        if kind == "say":
            if self.barged and self.barge_line_said:  # the line after the barge-in: all settled now
                self.barged = self.barge_line_said = False
            self.flush()
            self.out(f"{t:7.1f}s  caller: {detail}")
            self.barge_line_said = self.barged
        elif kind == "barge_in":
            self.barged = True  # the reply being talked over is printed once it is settled
            self.out(f"{t:7.1f}s  caller talks over the agent:")
        elif kind == "clear":
            self.out(f"{t:7.1f}s  -- agent audio cleared ({detail})")
        elif kind == "hangup":
            self.flush(final=True)
            self.out(f"{t:7.1f}s  caller hangs up")
        elif kind == "timeout":
            self.out(f"{t:7.1f}s  !! {detail}")


# ---------------------------------------------------------------- running it
def demo_config(data_dir: str, real: bool, env: dict, port: int, token: str, **overrides) -> Config:
    # the dashboard shows callers' words, so it needs a token: one for this run unless one is set
    overrides.setdefault("metrics_token", (env.get("OFFHOOK_METRICS_TOKEN") if real else None)
                         or secrets.token_urlsafe(16))
    return Config.load(env=env if real else {}, host="127.0.0.1", port=port, data_dir=data_dir,
                       public_url=f"http://127.0.0.1:{port}", twilio_auth_token=token, validate_signatures=True,
                       recording_sample_rate=1.0, mode="agent", **overrides)


async def run_demo(config: Config, scenario: Scenario, expect: dict, *, out: Callable[[str], None] = print,
                   providers=None, env: dict | None = None, voice=None, keep_serving: bool = False,
                   ready: Callable[[str], None] | None = None, while_serving=None) -> DemoOutcome:
    """The whole demo call on a running trio loop. `providers` overrides build_providers (tests use
    emulated ones); `voice` the caller's voice (default: the local TTS, else a synthetic voice);
    `while_serving(outcome)` is awaited after the call, while the server and dashboard still run."""
    from offhook.agent.factory import agent_handler_factory
    from offhook.observe.observer import Observer
    from offhook.server.app import OffhookApp
    from offhook.server.run import serve_app
    from offhook.sim.voice import local_tts_voice, synthetic_voice

    if providers is None:
        from offhook.providers.factory import build_providers
        providers = build_providers(config, env=env if env is not None else {})
    voice = voice or local_tts_voice() or synthetic_voice
    transcript = Transcript(out)
    data = Path(config.data_dir)
    data.mkdir(parents=True, exist_ok=True)
    try:
        async with Observer.open(config) as obs, agent_handler_factory(config, providers) as factory:
            app = OffhookApp(config, factory)
            obs.attach(app)
            app.call_started_hooks.append(transcript.on_call)
            async with trio.open_nursery() as nursery:
                base = await nursery.start(serve_app, app, config.host, config.port)
                auth = f"?token={quote(config.metrics_token)}"
                dashboard = f"{base}/dashboard{auth}"
                if ready:
                    ready(base)
                names = getattr(providers, "names", None)
                out(f"offhook demo: server on {base}; providers: {names or '?'}")
                out("")
                media = base.replace("http://", "ws://") + "/twilio/media"
                caller = SimCaller(media, scenario, auth_token=config.twilio_auth_token,
                                   signed_url=config.public_url.replace("http://", "ws://") + "/twilio/media",
                                   voice=voice, on_event=transcript.on_event, seed=secrets.randbits(32))
                result = await caller.run()
                with trio.move_on_after(10):
                    while result.call_sid in app.active:
                        await trio.sleep(0.05)
                await obs.flush()
                record = await obs.store.get_call(result.call_sid)
                transcript.call = transcript.call or _Frozen(record)
                transcript.flush(final=True)
                wav = data / "demo" / f"{result.call_sid}.wav"
                wav.parent.mkdir(parents=True, exist_ok=True)
                result.write_wav(str(wav))
                timeline = wav.with_suffix(".json")
                result.write_json(str(timeline))
                outcome = DemoOutcome(result, record, check_outcome(result, record, expect), str(wav), str(timeline),
                                      store=_store_desc(config, result.call_sid),
                                      dashboard=f"{base}/dashboard/call/{result.call_sid}{auth}")
                if record is not None:
                    usage, outcome.cost_estimated = real_price_usage(record)
                    outcome.real_cost = CostLedger(config.prices).cost(usage)
                    if record.recording_path:
                        outcome.recording = str(data / "recordings" / record.recording_path)
                if while_serving is not None:
                    await while_serving(outcome)
                if keep_serving:
                    out(render_summary(outcome))
                    out(f"\nserving on {base} (dashboard {dashboard}); Ctrl-C to stop")
                    await trio.sleep_forever()
                nursery.cancel_scope.cancel()
    finally:
        aclose = getattr(providers, "aclose", None)
        if aclose is not None:
            with trio.CancelScope(shield=True):
                await aclose()
    return outcome


class _Frozen:
    """The finished call's record in place of the live call, for the transcript's last flush."""

    def __init__(self, record):
        self.record = record


def _store_desc(config: Config, sid: str) -> str:
    if config.database_url.startswith(("postgres://", "postgresql://")):
        return f"PostgreSQL (DATABASE_URL), call {sid}"
    from offhook.observe.store_sqlite import sqlite_path
    return f"{sqlite_path(config)} (SQLite), call {sid}; `offhook report` reads it"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scenario", default=None, help="scripted call (YAML/TOML); default: the bundled demo call")
    p.add_argument("--data-dir", default=os.environ.get("OFFHOOK_DATA_DIR", "offhook-data"),
                   help="where the call store, recordings and the demo WAV go (default: ./offhook-data)")
    p.add_argument("--port", type=int, default=0, help="loopback port (default: a free one)")
    p.add_argument("--keep-serving", action="store_true", help="leave the server and dashboard running")
    p.add_argument("--real", action="store_true",
                   help="use the real providers (needs " + ", ".join(REAL_KEYS) + ")")


def run(args: argparse.Namespace) -> int:
    from offhook.bench.wsservers import free_port

    try:
        scenario, expect = load_scenario(args.scenario or bundled_scenario())
    except ScenarioError as e:
        print(f"offhook demo: {e}", file=sys.stderr)
        return 2
    env = dict(os.environ)
    if args.real:
        missing = [k for k in REAL_KEYS if not (env.get(k) or "").strip()]  # as the provider factory reads them
        if missing:
            print(f"offhook demo --real: set {', '.join(missing)} (or run without --real for the offline demo)",
                  file=sys.stderr)
            return 2
    try:
        config = demo_config(args.data_dir, args.real, env, args.port or free_port(), secrets.token_hex(16))
    except ConfigError as e:
        print(f"offhook demo: {e}", file=sys.stderr)
        return 2
    try:
        outcome = trio.run(lambda: run_demo(config, scenario, expect, env=env if args.real else {},
                                            keep_serving=args.keep_serving))
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # a crash is a failed demo too: say what broke, in one line, then the trace
        import traceback

        from offhook.server.cli import _single
        leaf = _single(e)
        traceback.print_exception(e, file=sys.stderr)
        print(f"\noffhook demo: the demo call crashed: {type(leaf).__name__}: {leaf}", file=sys.stderr)
        return 1
    print(render_summary(outcome))
    if not outcome.ok:
        failed = [c for c in outcome.checks if not c.ok]
        print(f"\noffhook demo: the call did not go as scripted: {failed[0].name}"
              f"{' (' + failed[0].detail + ')' if failed[0].detail else ''}", file=sys.stderr)
        return 1
    print("\nthe call went as scripted.")
    return 0
