"""Inline SVG charts for the dashboard: server-rendered, no script, no build step, nothing fetched.

Every chart is an <svg class="chart" data-chart=NAME> whose marks carry data-* attributes with the
values they draw, so a test (or a curious operator) can read the numbers back from the page.
"""
from __future__ import annotations

import math
from html import escape

W, H = 640, 220
PAD_L, PAD_R, PAD_T, PAD_B = 52, 12, 14, 34


def _nice_max(v: float) -> float:
    if v <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if v <= m * exp:
            return m * exp
    return 10 * exp


def _frame(name: str, title: str, ymax: float, yfmt, body: list[str], xlabels: list[tuple[float, str]]) -> str:
    ih = H - PAD_T - PAD_B
    out = [f'<svg class="chart" data-chart="{escape(name)}" viewBox="0 0 {W} {H}" width="{W}" height="{H}" '
           f'role="img" aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
           f"<title>{escape(title)}</title>"]
    for i in range(5):
        v = ymax * i / 4
        y = PAD_T + ih - ih * i / 4
        out.append(f'<line class="grid" x1="{PAD_L}" x2="{W - PAD_R}" y1="{y:.1f}" y2="{y:.1f}"/>'
                   f'<text class="tick" x="{PAD_L - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(yfmt(v))}</text>')
    for i, (x, label) in enumerate(xlabels):
        anchor = "end" if i == len(xlabels) - 1 and x > W - PAD_R - 40 else "middle"
        out.append(f'<text class="tick" x="{x:.1f}" y="{H - PAD_B + 16}" text-anchor="{anchor}">{escape(label)}</text>')
    out += body
    out.append("</svg>")
    return "".join(out)


def empty(name: str, title: str) -> str:
    return (f'<svg class="chart empty" data-chart="{escape(name)}" viewBox="0 0 {W} 60" width="{W}" height="60" '
            f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
            f'<text x="{W / 2}" y="34" text-anchor="middle" class="tick">no data in this window</text></svg>')


def bars(name: str, title: str, items: list[tuple[str, float]], yfmt, *, stacked_under: list[float] | None = None
         ) -> str:
    """One bar per (label, value); `stacked_under` draws a lighter bar of a total behind each."""
    if not items:
        return empty(name, title)
    iw, ih = W - PAD_L - PAD_R, H - PAD_T - PAD_B
    ymax = _nice_max(max([v for _, v in items] + (stacked_under or [0])))
    slot = iw / len(items)
    bw = min(56.0, slot * 0.7)
    body, xl = [], []
    for i, (label, v) in enumerate(items):
        x = PAD_L + slot * i + (slot - bw) / 2
        if stacked_under is not None:
            tot = stacked_under[i]
            h = ih * tot / ymax
            body.append(f'<rect class="bar total" x="{x:.1f}" y="{PAD_T + ih - h:.1f}" width="{bw:.1f}" '
                        f'height="{h:.1f}" data-label="{escape(label)}" data-value="{tot:g}"/>')
        h = ih * v / ymax
        body.append(f'<rect class="bar" x="{x:.1f}" y="{PAD_T + ih - h:.1f}" width="{bw:.1f}" height="{h:.1f}" '
                    f'data-label="{escape(label)}" data-value="{v:g}"><title>{escape(label)}: {escape(yfmt(v))}'
                    f'</title></rect>')
        if i % max(1, math.ceil(len(items) / 12)) == 0:  # at most a dozen labels stay legible
            xl.append((x + bw / 2, label))
    return _frame(name, title, ymax, yfmt, body, xl)


def bands(name: str, title: str, points: list[tuple[float, float, float]], xfmt, yfmt) -> str:
    """P50 line inside a P50..P95 band over time; points are (x, p50, p95) sorted by x."""
    if not points:
        return empty(name, title)
    iw, ih = W - PAD_L - PAD_R, H - PAD_T - PAD_B
    x0, x1 = points[0][0], points[-1][0]
    span = (x1 - x0) or 1.0
    ymax = _nice_max(max(p95 for _, _, p95 in points))

    def px(x: float) -> float:
        return PAD_L + (iw * (x - x0) / span if len(points) > 1 else iw / 2)

    def py(y: float) -> float:
        return PAD_T + ih - ih * y / ymax
    upper = " ".join(f"{px(x):.1f},{py(p95):.1f}" for x, _, p95 in points)
    lower = " ".join(f"{px(x):.1f},{py(p50):.1f}" for x, p50, _ in reversed(points))
    body = [f'<polygon class="band" points="{upper} {lower}"/>',
            f'<polyline class="p95" points="{upper}"/>',
            '<polyline class="p50" points="' + " ".join(f"{px(x):.1f},{py(p50):.1f}" for x, p50, _ in points) + '"/>']
    for x, p50, p95 in points:
        body.append(f'<circle class="pt" cx="{px(x):.1f}" cy="{py(p50):.1f}" r="2.5" data-x="{x:g}" '
                    f'data-p50="{p50:g}" data-p95="{p95:g}"><title>{escape(xfmt(x))}: P50 {escape(yfmt(p50))}, '
                    f'P95 {escape(yfmt(p95))}</title></circle>')
    ticks = [points[0][0], points[-1][0]] if len(points) > 1 else [points[0][0]]
    return _frame(name, title, ymax, yfmt, body, [(px(t), xfmt(t)) for t in ticks])


def waterfall(name: str, title: str, rows: list[tuple[str, float, float]], total: float | None) -> str:
    """Horizontal spans (label, start s, end s) from the caller's end of speech (0)."""
    if not rows:
        return empty(name, title)
    row_h, left = 20, 130
    h = PAD_T + row_h * len(rows) + 24
    end = max([e for _, _, e in rows] + [total or 0.0]) or 1.0
    scale = (W - left - PAD_R) / end
    out = [f'<svg class="chart waterfall" data-chart="{escape(name)}" viewBox="0 0 {W} {h}" width="{W}" '
           f'height="{h}" xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>']
    for i, (label, s, e) in enumerate(rows):
        y = PAD_T + i * row_h
        out.append(f'<text class="tick" x="{left - 6}" y="{y + 13}" text-anchor="end">{escape(label)}</text>'
                   f'<rect class="span" x="{left + s * scale:.1f}" y="{y + 3}" width="{max(1.0, (e - s) * scale):.1f}" '
                   f'height="{row_h - 6}" data-label="{escape(label)}" data-start="{s:g}" data-end="{e:g}">'
                   f'<title>{escape(label)}: {s * 1000:.0f}-{e * 1000:.0f} ms</title></rect>')
    y = PAD_T + row_h * len(rows) + 14
    out.append(f'<text class="tick" x="{left}" y="{y}">0</text>'
               f'<text class="tick" x="{W - PAD_R}" y="{y}" text-anchor="end">{end * 1000:.0f} ms</text></svg>')
    return "".join(out)
