"""The dashboard: server-rendered HTML pages over the call store (the report's figures as charts).

GET /dashboard[?days=7]           figures, charts and the call list for the window
GET /dashboard/call/<sid>         one call: transcript, per-turn latency waterfall, events, recording

Everything a caller said is escaped; numbers are masked. The pages hold no script and fetch nothing
but the recording, so they work offline and under a strict Content-Security-Policy.
"""
from __future__ import annotations

from html import escape
from urllib.parse import quote

from offhook.observe import svg
from offhook.observe.formats import ms, pct, usd, when
from offhook.observe.measures import percentile, stage_latencies
from offhook.observe.record import CallRecord
from offhook.observe.report import mask_number, recording_reason

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; media-src 'self'"

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1d2330;background:#f7f8fa}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px}a{color:#2456c9}
.figs{display:flex;flex-wrap:wrap;gap:12px}.fig{background:#fff;border:1px solid #dde1e8;border-radius:6px;
padding:8px 12px;min-width:120px}.fig b{display:block;font-size:18px}.muted{color:#6b7280}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(660px,1fr));gap:16px}
.card{background:#fff;border:1px solid #dde1e8;border-radius:6px;padding:8px}
table{border-collapse:collapse;background:#fff}td,th{border-bottom:1px solid #e5e7eb;padding:4px 8px;
text-align:left;vertical-align:top}th{font-weight:600}
svg .grid{stroke:#e5e7eb}svg .tick{font-size:11px;fill:#6b7280}svg .bar{fill:#3b6fd8}
svg .bar.total{fill:#c9d6f3}svg .band{fill:#c9d6f3}svg .p50{fill:none;stroke:#2456c9;stroke-width:2}
svg .p95{fill:none;stroke:#8aa6e8;stroke-width:1}svg .pt{fill:#2456c9}svg .span{fill:#3b6fd8}
.caller{color:#0f5132}.agent{color:#1d2330}.cut{color:#b42318}
"""


def _count(v: float) -> str:
    return f"{round(v, 2):g}"


def _page(title: str, body: str) -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f'<link rel="icon" href="data:,"><meta name="viewport" content="width=device-width">'
            f"<style>{STYLE}</style></head><body>{body}</body></html>")


def _fig(label: str, value: str) -> str:
    return f'<div class="fig"><span class="muted">{escape(label)}</span><b>{escape(value)}</b></div>'


def _card(svg_text: str, title: str) -> str:
    return f'<div class="card"><h2>{escape(title)}</h2>{svg_text}</div>'


def latency_over_time(records: list[CallRecord], since: float, until: float, bins: int = 24
                      ) -> list[tuple[float, float, float]]:
    """(bin start, P50, P95) of first-audio latency per time bin that has turns."""
    width = max((until - since) / bins, 1.0)
    by_bin: dict[int, list[float]] = {}
    for r in records:
        for t in r.turns:
            if (fa := t.first_audio_latency) is not None:
                by_bin.setdefault(int((r.started_at - since) // width), []).append(fa)
    return [(since + b * width, percentile(v, 50), percentile(v, 95)) for b, v in sorted(by_bin.items())]


def latency_histogram(records: list[CallRecord], step: float = 0.1, top: float = 2.0) -> list[tuple[str, float]]:
    n = int(round(top / step))
    counts = [0] * (n + 1)
    for r in records:
        for t in r.turns:
            if (fa := t.first_audio_latency) is not None:
                counts[min(n, max(0, int(fa / step)))] += 1
    if not any(counts):
        return []
    labels = [f"{i * step * 1000:.0f}" for i in range(n)] + [f"{top * 1000:.0f}+"]
    return list(zip(labels, counts))


def cost_per_day(records: list[CallRecord]) -> list[tuple[str, float]]:
    days: dict[str, float] = {}
    for r in records:
        if r.complete:
            d = when(r.started_at, "%m-%d")
            days[d] = days.get(d, 0.0) + r.cost.get("total", 0.0)
    return sorted(days.items())


WINDOWS = ((1, "24 h"), (7, "7 days"), (30, "30 days"), (90, "90 days"))


def overview(rep: dict, records: list[CallRecord], link, *, days: float = 7, truncated: bool = False) -> str:
    """`rep` is offhook.observe.report.compute() over `records`; `link(path, **query)` keeps the token."""
    c, bi, cost = rep["calls"], rep["barge_in"], rep["cost"]
    done = [r for r in records if r.complete]
    figs = "".join([
        _fig("calls", f"{c['total']} ({c['incomplete']} incomplete)"),
        _fig("first audio P50", ms(rep["first_audio"]["p50"])),
        _fig("first audio P95", ms(rep["first_audio"]["p95"])),
        _fig("barge-in success", pct(bi["success_rate"])), _fig("false barge-ins", pct(bi["false_rate"])),
        _fig("stalls", str(rep["stalls"])), _fig("TTS fallbacks", str(rep["tts_fallbacks"])),
        _fig("handoffs", str(rep["handoffs"])), _fig("cost total", usd(cost["total"])),
        _fig("cost per call", usd(cost["per_call"])), _fig("cost per minute", usd(cost["per_minute"])),
    ])
    stage_rows = "".join(f"<tr><td>{escape(s)}</td><td>{ms(v['p50'])}</td><td>{ms(v['p95'])}</td>"
                         f"<td>{v['n']}</td></tr>"
                         for s, v in rep["stages"].items())
    hb = rep["hangups_by_duration"]
    charts = "".join([
        _card(svg.bands("latency_over_time", "first-audio latency over time (P50 line, P50-P95 band)",
                        latency_over_time(done, rep["since"], rep["until"]),
                        lambda x: when(x, "%m-%d %H:%M"), lambda y: f"{y * 1000:.0f} ms"),
              "First-audio latency over time"),
        _card(svg.bars("latency_histogram", "first-audio latency histogram (turns per 100 ms)",
                       latency_histogram(done), _count), "First-audio latency histogram (ms)"),
        _card(svg.bars("hangups_by_duration", "caller hang-ups (dark) of all calls (light) by call duration",
                       [(k, float(v["caller_hangups"])) for k, v in hb.items()], _count,
                       stacked_under=[float(v["calls"]) for v in hb.values()]) if done
              else svg.empty("hangups_by_duration", "hang-ups by duration"), "Caller hang-ups by call duration"),
        _card(svg.bars("cost_per_day", "cost per day (dollars)", cost_per_day(done), lambda v: f"${v:.2f}"),
              "Cost per day"),
    ])
    rows = []
    for r in sorted(records, key=lambda r: -r.started_at):
        fa = [t.first_audio_latency for t in r.turns if t.first_audio_latency is not None]
        dur = "-" if r.duration is None else f"{r.duration:.0f} s"
        rec_mark = "&#9654; " + escape(recording_reason(r)) if r.recording_path else ""
        rows.append(
            f'<tr data-sid="{escape(r.call_sid)}"><td>{when(r.started_at)}</td>'
            f'<td><a href="{escape(link("/dashboard/call/" + quote(r.call_sid)))}">{escape(r.call_sid)}</a></td>'
            f"<td>{escape(mask_number(r.from_number))}</td><td>{dur}</td>"
            f"<td>{escape(r.end_reason.value if r.complete else 'incomplete')}</td><td>{len(r.turns)}</td>"
            f"<td>{ms(percentile(fa, 50))}</td><td>{usd(r.cost.get('total'))}</td><td>{rec_mark}</td></tr>")
    review = "".join(
        f'<li><a href="{escape(link("/dashboard/call/" + quote(v["call_sid"])))}">{escape(v["call_sid"])}</a> '
        f'{escape(v["why"])}, {escape(v["end_reason"])}</li>' for v in rep["review"])
    windows = " | ".join(f"<b>{label}</b>" if d == days else
                         f'<a href="{escape(link("/dashboard", days=d))}">{label}</a>' for d, label in WINDOWS)
    note = (f" <b>(the newest {len(records)} calls only: use offhook report for the whole window)</b>"
            if truncated else "")
    body = (f"<h1>offhook</h1><p class=muted>{when(rep['since'])} .. {when(rep['until'])} UTC{note}"
            f" &middot; {windows}</p>"
            f'<div class="figs">{figs}</div><div class="charts">{charts}</div>'
            f"<h2>Per-stage latency</h2><table><tr><th>stage</th><th>P50</th><th>P95</th><th>turns</th></tr>"
            f"{stage_rows}</table>"
            f"<h2>Calls to review ({len(rep['review'])} of {rep['recordings_kept']} recordings)</h2>"
            f"<ul>{review or '<li class=muted>none</li>'}</ul>"
            f'<h2>Calls</h2><table class="calls"><tr><th>started (UTC)</th><th>call</th><th>from</th>'
            f"<th>duration</th><th>end</th><th>turns</th><th>first audio P50</th><th>cost</th><th>recording</th></tr>"
            f"{''.join(rows)}</table>")
    return _page("offhook dashboard", body)


def _turn_rows(t) -> list[tuple[str, float, float]]:
    """Waterfall spans of one turn, seconds from the caller's end of speech."""
    if t.speech_end is None:
        return []
    z = t.speech_end
    spans = []
    lat = stage_latencies(t)
    if lat["endpoint_wait"] is not None:
        spans.append(("endpoint wait", 0.0, lat["endpoint_wait"]))
    if lat["stt_final"] is not None:
        spans.append(("STT final", 0.0, lat["stt_final"]))
    if t.endpoint_commit is not None and t.llm_first_token is not None:
        early = t.llm_first_token < t.endpoint_commit  # a speculative reply was already streaming
        spans.append(("LLM (speculative)" if early else "LLM first token", t.endpoint_commit - z,
                      max(t.endpoint_commit, t.llm_first_token) - z))
    if t.llm_first_token is not None and t.tts_first_audio is not None:
        spans.append(("TTS first audio", t.llm_first_token - z, t.tts_first_audio - z))
    if t.tts_first_audio is not None and t.first_frame_sent is not None:
        spans.append(("first frame sent", t.tts_first_audio - z, t.first_frame_sent - z))
    if t.first_frame_sent is not None and t.first_frame_played is not None:
        spans.append(("played (mark)", t.first_frame_sent - z, t.first_frame_played - z))
    return spans


def call_page(rec: CallRecord, link, recording_url: str | None) -> str:
    dur = "-" if rec.duration is None else f"{rec.duration:.1f} s"
    head = (f"<h1>Call {escape(rec.call_sid)}</h1><p><a href=\"{escape(link('/dashboard'))}\">&larr; dashboard</a></p>"
            f'<div class="figs">{_fig("started (UTC)", when(rec.started_at))}{_fig("duration", dur)}'
            f'{_fig("from", mask_number(rec.from_number))}{_fig("to", mask_number(rec.to_number))}'
            f'{_fig("ended", rec.end_reason.value if rec.complete else "incomplete")}{_fig("by", rec.ended_by.value)}'
            f'{_fig("cost", usd(rec.cost.get("total")))}</div>')
    audio = (f'<h2>Recording</h2><audio controls preload="metadata" src="{escape(recording_url)}"></audio>'
             if recording_url else "<p class=muted>No recording kept for this call.</p>")
    turns = []
    for t in rec.turns:
        heard = t.agent_text_heard
        cut = ""
        if t.interrupted and heard != t.agent_text_generated:
            cut = f'<div class="cut">not heard (barge-in): {escape(t.agent_text_generated[len(heard):].strip())}</div>'
        conf = "" if t.caller_confidence is None else f" <span class=muted>({t.caller_confidence:.2f})</span>"
        fa = t.first_audio_latency
        turns.append(
            f'<div class="card turn" data-turn="{t.index}"><div class="caller"><b>Caller:</b> {escape(t.caller_text)}'
            f'{conf}</div><div class="agent"><b>Agent:</b> {escape(heard or t.agent_text_generated)}</div>{cut}'
            f'<p class=muted>first audio {ms(fa)}; TTS {escape(t.tts_provider or "-")}; speculative '
            f'{escape(t.speculative)}{"; stalled" if t.stalled else ""}</p>'
            f'{svg.waterfall(f"waterfall_{t.index}", f"turn {t.index} latency waterfall", _turn_rows(t), fa)}</div>')
    barge = "".join(f"<tr><td>{b.onset:.2f} s</td><td>{escape(b.outcome)}</td><td>{ms(b.reaction)}</td>"
                    f"<td>{b.heard_ms:.0f} ms</td><td>{escape(', '.join(b.cancelled))}</td></tr>"
                    for b in rec.barge_ins)
    events = "".join(f"<tr><td>{e.at:.2f} s</td><td>{escape(e.kind)}</td><td>{escape(e.detail)}</td></tr>"
                     for e in rec.events)
    costs = "".join(f"<tr><td>{escape(k)}</td><td>{usd(v)}</td></tr>" for k, v in rec.cost.items())
    body = (head + audio + "<h2>Transcript</h2>" + ("".join(turns) or "<p class=muted>No turns.</p>")
            + (f"<h2>Barge-ins</h2><table><tr><th>onset</th><th>outcome</th><th>reaction</th><th>heard</th>"
               f"<th>cancelled</th></tr>{barge}</table>" if barge else "")
            + (f"<h2>Events</h2><table><tr><th>at</th><th>kind</th><th>detail</th></tr>{events}</table>"
               if events else "")
            + (f"<h2>Cost</h2><table>{costs}</table>" if costs else ""))
    return _page(f"offhook call {rec.call_sid}", body)
