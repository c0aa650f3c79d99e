"""Metric charts for the explorer: a series downsampled on the server, drawn as an inline SVG.

A million-point series reaches the browser as at most ``MAX_POINTS`` points: the steps are cut into
``MAX_POINTS // 2`` buckets and each bucket keeps its lowest and its highest point, in order, so that a
spike or a dip is never smoothed away (the M4 idea, without the first and last point of each bucket).
"""

from __future__ import annotations

import html
import math
from typing import Sequence

MAX_POINTS = 2000
WIDTH, HEIGHT, PAD = 560, 220, 64


def downsample(xs: Sequence[float], ys: Sequence[float], most: int = MAX_POINTS) -> tuple[list[float], list[float]]:
    """At most ``most`` points of (xs, ys), each bucket's minimum and maximum kept in x order."""
    count = len(ys)
    if count <= most:
        return list(xs), list(ys)
    buckets = most // 2
    out_x: list[float] = []
    out_y: list[float] = []
    for b in range(buckets):
        start, end = b * count // buckets, (b + 1) * count // buckets
        chunk = ys[start:end]  # min, max and index run in C: a million points cost milliseconds
        low, high = min(chunk), max(chunk)
        first, second = sorted((start + chunk.index(low), start + chunk.index(high)))
        for i in ((first,) if first == second else (first, second)):
            out_x.append(xs[i])
            out_y.append(ys[i])
    return out_x, out_y


def _tick(value: float) -> str:
    return f"{value:.4g}"


def line_chart(title: str, xs: Sequence[float], ys: Sequence[float], x_label: str, total: int) -> str:
    """An SVG line chart with its axes' ranges written out; ``total`` is the points the series has."""
    xs, ys = downsample(xs, ys)
    pairs = [(x, y) for x, y in zip(xs, ys) if isinstance(y, (int, float)) and math.isfinite(y)]
    caption = f"{title} — {total} point(s)" + (f", {len(xs)} drawn (each bucket's min and max)" if total > len(xs)
                                              else "")
    if not pairs:
        return f'<figure class="chart"><figcaption>{html.escape(caption)}: no finite value</figcaption></figure>'
    x0, x1 = min(p[0] for p in pairs), max(p[0] for p in pairs)
    y0, y1 = min(p[1] for p in pairs), max(p[1] for p in pairs)
    span_x, span_y = (x1 - x0) or 1.0, (y1 - y0) or 1.0
    inner_w, inner_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD

    def at(x: float, y: float) -> str:
        return f"{PAD + (x - x0) / span_x * inner_w:.1f},{HEIGHT - PAD - (y - y0) / span_y * inner_h:.1f}"

    points = " ".join(at(x, y) for x, y in pairs)
    dots = "" if len(pairs) > 60 else "".join(
        f'<circle class="dot" cx="{at(x, y).split(",")[0]}" cy="{at(x, y).split(",")[1]}" r="2.5"/>' for x, y in pairs)
    return (
        f'<figure class="chart"><figcaption>{html.escape(caption)}</figcaption>'
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{html.escape(title)}">'
        f'<rect class="frame" x="{PAD}" y="{PAD}" width="{inner_w}" height="{inner_h}"/>'
        f'<polyline class="line" points="{points}"/>{dots}'
        f'<text class="tick" x="{PAD}" y="{HEIGHT - PAD + 16}">{_tick(x0)}</text>'
        f'<text class="tick end" x="{WIDTH - PAD}" y="{HEIGHT - PAD + 16}">{_tick(x1)}</text>'
        f'<text class="tick end" x="{PAD - 4}" y="{HEIGHT - PAD}">{_tick(y0)}</text>'
        f'<text class="tick end" x="{PAD - 4}" y="{PAD + 4}">{_tick(y1)}</text>'
        f'<text class="axis" x="{WIDTH / 2}" y="{HEIGHT - 6}">{html.escape(x_label)}</text>'
        f"</svg></figure>")
