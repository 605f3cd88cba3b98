"""Small server-rendered SVG line charts (no JavaScript, nothing from a CDN)."""

from __future__ import annotations

from datetime import datetime

from markupsafe import Markup, escape


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
        f'aria-label="{escape(label)}, {len(points)} points, latest {last:g} {escape(unit)}">'
        f'<polyline fill="none" stroke="#0d6efd" stroke-width="1.5" points="{path}" />'
        f'<g fill="#0d6efd">{dots}</g>'
        f'<text x="2" y="12" font-size="10" fill="#6c757d">{y1:g} {escape(unit)}</text>'
        f'<text x="2" y="{height - 4}" font-size="10" fill="#6c757d">{y0:g} {escape(unit)}</text>'
        "</svg>"
    )
