"""Small server-rendered SVG line charts (no JavaScript, nothing from a CDN)."""

from __future__ import annotations

from datetime import datetime

from markupsafe import Markup, escape


def _num(value: float) -> str:
    """A chart label: at most one decimal, no trailing zeros (31.5944 → 31.6)."""
    return f"{round(value, 1):g}"


def line_chart(
    points: list[tuple[datetime, float]],
    *,
    label: str,
    unit: str = "",
    width: int = 320,
    height: int = 90,
) -> Markup:
    """An SVG line chart of (time, value) points with min/max labels."""
    pad = 18
    if not points:
        return Markup(
            f'<svg class="chart" width="{width}" height="{height}" role="img" '
            f'aria-label="{escape(label)}: no data"><text x="8" y="{height // 2}" '
            f'font-size="12" fill="#6c757d">No {escape(label)} data yet</text></svg>'
        )
    xs = [p[0].timestamp() for p in points]
    ys = [float(p[1]) for p in points]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    span_x = (x1 - x0) or 1.0
    span_y = (y1 - y0) or 1.0

    def sx(x: float) -> float:
        return pad + (x - x0) / span_x * (width - 2 * pad)

    def sy(y: float) -> float:
        return height - pad - (y - y0) / span_y * (height - 2 * pad)

    path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in zip(xs, ys, strict=True))
    dots = "".join(
        f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2" />' for x, y in zip(xs, ys, strict=True)
    )
    last = ys[-1]
    return Markup(
        f'<svg class="chart" width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(label)}, {len(points)} points, latest {_num(last)} {escape(unit)}">'
        f'<polyline fill="none" stroke="#0d6efd" stroke-width="1.5" points="{path}" />'
        f'<g fill="#0d6efd">{dots}</g>'
        f'<text x="2" y="12" font-size="10" fill="#6c757d">{_num(y1)} {escape(unit)}</text>'
        f'<text x="2" y="{height - 4}" font-size="10" fill="#6c757d">'
        f"{_num(y0)} {escape(unit)}</text>"
        "</svg>"
    )


def freshness_chart(rows: list[tuple[str, float | None]], width: int = 320) -> Markup:
    """Horizontal bars: hours since the newest record of each data type (longer = staler)."""
    bar_height, gap, label_width = 14, 6, 110
    height = len(rows) * (bar_height + gap) + gap
    known = [hours for _, hours in rows if hours is not None]
    top = max(known + [24.0])
    parts = []
    for i, (name, hours) in enumerate(rows):
        y = gap + i * (bar_height + gap)
        parts.append(
            f'<text x="0" y="{y + bar_height - 3}" font-size="11" fill="#212529">'
            f"{escape(name)}</text>"
        )
        if hours is None:
            parts.append(
                f'<text x="{label_width}" y="{y + bar_height - 3}" font-size="11" '
                'fill="#6c757d">no data</text>'
            )
            continue
        length = max(2.0, hours / top * (width - label_width - 60))
        color = "#198754" if hours <= 36 else ("#ffc107" if hours <= 72 else "#dc3545")
        parts.append(
            f'<rect x="{label_width}" y="{y}" width="{length:.1f}" height="{bar_height}" '
            f'fill="{color}" />'
            f'<text x="{label_width + length + 4:.1f}" y="{y + bar_height - 3}" font-size="11" '
            f'fill="#6c757d">{hours:.0f} h</text>'
        )
    return Markup(
        f'<svg class="chart" width="{width}" height="{height}" role="img" '
        f'aria-label="data freshness">{"".join(parts)}</svg>'
    )
