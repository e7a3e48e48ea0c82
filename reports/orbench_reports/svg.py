"""Minimal SVG charts for the HTML report: scatter (with a front line), grouped bars, lines.

Hand-written so the report needs no plotting library and stays one self-contained file that
any browser shows and any diff tool can read. Every chart is an ``<svg role="img">`` with a
``<title>``, so screen readers and the rendering test both find it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
W, H = 780, 420
LEFT, RIGHT, TOP, BOTTOM = 64, 260, 44, 56
LEGEND_CHARS = 38
PAD = 16  # pixels between the data range and the frame on scatter and line plots (ring r=8, label)


@dataclass(frozen=True, slots=True)
class Axis:
    """A linear axis from ``lo`` to ``hi`` mapped to pixels ``p0``..``p1``."""

    lo: float
    hi: float
    p0: float
    p1: float

    def __call__(self, v: float) -> float:
        span = self.hi - self.lo or 1.0
        return self.p0 + (v - self.lo) / span * (self.p1 - self.p0)


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (1, 2, 5 x 10^k steps)."""
    if not math.isfinite(lo) or not math.isfinite(hi):
        return [0.0, 1.0]
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(1, count)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks = []
    v = start
    while v <= hi + step * 1e-9:
        ticks.append(round(v, 12))
        v += step
    if ticks[-1] < hi:
        ticks.append(round(v, 12))
    return ticks


def rate_span(vals: Sequence[float], min_span: float = 10.0) -> list[float]:
    """Axis limits for percentages: at least ``min_span`` points wide, kept inside 0-100, so a
    set of equal values (every run at S.S 0) still gets a readable axis."""
    lo, hi = min(vals), max(vals)
    if hi - lo < min_span:
        mid = (lo + hi) / 2
        lo, hi = mid - min_span / 2, mid + min_span / 2
        shift = max(0.0, -lo) - max(0.0, hi - 100.0)
        lo, hi = lo + shift, hi + shift
    return [lo, hi]


def _fmt(v: float) -> str:
    return f"{v:g}"


def _frame(
    title: str, x_title: str, y_title: str, xs: list[float] | None, ys: list[float], *, inset: float = 0.0
) -> tuple[list[str], Axis, Axis]:
    """The svg opening, axes, grid and titles; returns parts plus the two axes.

    ``xs=None`` is a categorical x axis (bars): no x ticks or grid. ``inset`` keeps the data
    range that many pixels inside the frame, so a point at an axis limit (a run at 100% S.S)
    is drawn whole beside the frame line rather than cut by it; bars start on the frame."""
    xt = nice_ticks(min(xs), max(xs)) if xs else []
    yt = nice_ticks(min(ys), max(ys))
    xa = Axis(xt[0], xt[-1], LEFT + inset, W - RIGHT - inset) if xt else Axis(0.0, 1.0, LEFT, W - RIGHT)
    ya = Axis(yt[0], yt[-1], H - BOTTOM - inset, TOP + inset)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{W}" height="{H}" '
        f'viewBox="0 0 {W} {H}" aria-label="{escape(title)}" font-family="sans-serif" '
        'font-size="12">',
        f"<title>{escape(title)}</title>",
        f'<rect x="0" y="0" width="{W}" height="{H}" fill="white"/>',
        f'<text x="{W / 2}" y="20" text-anchor="middle" font-size="14">{escape(title)}</text>',
    ]
    for t in xt:
        x = xa(t)
        parts.append(f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{H - BOTTOM}" stroke="#eee"/>')
        parts.append(f'<text x="{x:.1f}" y="{H - BOTTOM + 16}" text-anchor="middle">{_fmt(t)}</text>')
    for t in yt:
        y = ya(t)
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{W - RIGHT}" y2="{y:.1f}" stroke="#eee"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(t)}</text>')
    parts += [
        f'<rect x="{LEFT}" y="{TOP}" width="{W - LEFT - RIGHT}" height="{H - TOP - BOTTOM}" '
        'fill="none" stroke="#333"/>',
        f'<text x="{(LEFT + W - RIGHT) / 2}" y="{H - 16}" text-anchor="middle">{escape(x_title)}</text>',
        f'<text transform="translate(16,{(TOP + H - BOTTOM) / 2}) rotate(-90)" '
        f'text-anchor="middle">{escape(y_title)}</text>',
    ]
    return parts, xa, ya


def _legend(names: Sequence[str], *, dashed: Sequence[bool] = ()) -> list[str]:
    parts = []
    for i, name in enumerate(names):
        y = TOP + 8 + i * 18
        color = PALETTE[i % len(PALETTE)]
        dash = ' stroke-dasharray="4 3"' if i < len(dashed) and dashed[i] else ""
        parts.append(
            f'<line x1="{W - RIGHT + 12}" y1="{y}" x2="{W - RIGHT + 30}" y2="{y}" stroke="{color}" '
            f'stroke-width="3"{dash}/>'
        )
        short = name if len(name) <= LEGEND_CHARS else name[: LEGEND_CHARS - 1] + "…"
        parts.append(f'<text x="{W - RIGHT + 36}" y="{y + 4}"><title>{escape(name)}</title>{escape(short)}</text>')
    return parts


def scatter(
    title: str,
    x_title: str,
    y_title: str,
    series: Sequence[tuple[str, Sequence[tuple[float, float, str]], Sequence[int]]],
) -> str:
    """Points per series (x, y, label; both percentages); per series, the ``front`` indices get a
    ring, and a dashed line joins them when there are two or more."""
    pts = [(x, y) for _, points, _ in series for x, y, _ in points if math.isfinite(x) and math.isfinite(y)]
    if not pts:
        return ""
    parts, xa, ya = _frame(title, x_title, y_title, rate_span([p[0] for p in pts]), rate_span([p[1] for p in pts]),
                           inset=PAD)
    for i, (_, points, front) in enumerate(series):
        color = PALETTE[i % len(PALETTE)]
        if len(front) >= 2:
            coords = " ".join(f"{xa(points[j][0]):.1f},{ya(points[j][1]):.1f}" for j in front)
            parts.append(
                f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="1.5" stroke-dasharray="4 3"/>'
            )
        for x, y, label in points:
            if not (math.isfinite(x) and math.isfinite(y)):
                continue
            parts.append(
                f'<circle cx="{xa(x):.1f}" cy="{ya(y):.1f}" r="5" fill="{color}">'
                f"<title>{escape(label)}: {x:.2f}, {y:.2f}</title></circle>"
            )
            parts.append(f'<text x="{xa(x) + 7:.1f}" y="{ya(y) - 6:.1f}" font-size="10">{escape(label)}</text>')
        parts += [f'<circle class="front" cx="{xa(points[j][0]):.1f}" cy="{ya(points[j][1]):.1f}" r="8" fill="none" '
                  f'stroke="{color}" stroke-width="1.5"/>' for j in front]
    parts += _legend([s[0] for s in series])
    parts.append("</svg>")
    return "\n".join(parts)


def bars(
    title: str,
    y_title: str,
    categories: Sequence[str],
    series: Sequence[tuple[str, Sequence[float]]],
) -> str:
    """Grouped vertical bars: one group per category, one bar per series."""
    if not categories or not series:
        return ""
    values = [v for _, vs in series for v in vs if math.isfinite(v)]
    parts, _, ya = _frame(title, "", y_title, None, [0.0, max([*values, 1.0])])
    group_w = (W - LEFT - RIGHT) / len(categories)
    bar_w = group_w * 0.8 / len(series)
    for c, cat in enumerate(categories):
        x0 = LEFT + c * group_w + group_w * 0.1
        for s, (name, vs) in enumerate(series):
            v = vs[c]
            if not math.isfinite(v):
                continue
            y = ya(v)
            parts.append(
                f'<rect x="{x0 + s * bar_w:.1f}" y="{y:.1f}" width="{bar_w:.1f}" '
                f'height="{ya(0.0) - y:.1f}" fill="{PALETTE[s % len(PALETTE)]}">'
                f"<title>{escape(name)} · {escape(cat)}: {v:.2f}</title></rect>"
            )
        parts.append(
            f'<text x="{LEFT + (c + 0.5) * group_w:.1f}" y="{H - BOTTOM + 18 + 14 * (c % 2)}" '
            f'text-anchor="middle" font-size="11">{escape(cat)}</text>'
        )
    parts += _legend([s[0] for s in series])
    parts.append("</svg>")
    return "\n".join(parts)


def lines(
    title: str,
    x_title: str,
    y_title: str,
    xs: Sequence[float],
    series: Sequence[tuple[str, Sequence[float]]],
) -> str:
    """One polyline with markers per series (percentages) over shared x values."""
    ys = [v for _, vs in series for v in vs if math.isfinite(v)]
    if len(xs) < 2 or not ys:
        return ""
    parts, xa, ya = _frame(title, x_title, y_title, list(xs), rate_span(ys), inset=PAD)
    for i, (_, vs) in enumerate(series):
        color = PALETTE[i % len(PALETTE)]
        coords = [(xa(x), ya(v)) for x, v in zip(xs, vs, strict=True) if math.isfinite(v)]
        parts.append(
            f'<polyline points="{" ".join(f"{a:.1f},{b:.1f}" for a, b in coords)}" fill="none" '
            f'stroke="{color}" stroke-width="2"/>'
        )
        parts += [f'<circle cx="{a:.1f}" cy="{b:.1f}" r="4" fill="{color}"/>' for a, b in coords]
    parts += _legend([s[0] for s in series])
    parts.append("</svg>")
    return "\n".join(parts)
