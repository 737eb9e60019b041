"""How the dashboard and the text report show a figure: one spelling for both."""
from __future__ import annotations

from datetime import datetime, timezone


def when(t: float, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A Unix time in UTC."""
    return datetime.fromtimestamp(t, timezone.utc).strftime(fmt)


def ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1000:.0f} ms"


def pct(v: float | None) -> str:
    return "-" if v is None else f"{v * 100:.1f}%"


def usd(v: float | None) -> str:
    return "-" if v is None else f"${v:.4f}"
