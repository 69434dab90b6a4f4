"""Line charts as SVG without plotting libraries: points with error bars, round tick values
(1, 2 or 5 times a power of ten), a linear or logarithmic x axis, dashed reference lines, a
legend. Used by scripts/protocol.py for docs/results.md.

    line_chart("out.svg", "title", "x label", "y label",
               [Series("SplitMask", "#d62728", [(0.01, 80.1, 0.4), (0.1, 85.0, 0.3)])],
               x_log=True, x_ticks=[(0.01, "1%"), (0.1, "10%")])"""
import math
import pathlib


class Series:
    """A named line: points (x, y, error), the error drawn as ± bars (0: none)."""

    def __init__(self, label, colour, points, dashed=False):
        self.label, self.colour, self.points, self.dashed = label, colour, points, dashed


def round_ticks(low, high, count=5):
    """Round values (1, 2 or 5 · 10^k apart) covering [low, high], about `count` of them."""
    if high <= low:
        high = low + 1
    raw = (high - low) / max(1, count - 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    ticks = []
    v = first
    while v <= high + 1e-9 * step:
        ticks.append(round(v, 10))
        v += step
    if ticks[-1] < high:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def tick_text(v):
    return f"{v:g}"


def line_chart(path, title, x_label, y_label, series, x_log=False, x_ticks=None,
               references=()):
    """Writes the chart. x_ticks: [(value, text)] (default: round values); references:
    [(label, colour, y)] drawn as dashed horizontal lines across the chart."""
    labels = [f"- - {r[0]}" for r in references] + [f"— {s.label}" for s in series]
    # The legend's column fits its longest label (about 7 px a character at 12 px).
    right = max(240, 20 + 7 * max((len(text) for text in labels), default=0))
    h, left, top, bottom = 420, 64, 40, 50
    w = left + 456 + right
    points = [p for s in series for p in s.points]
    if not points:
        return False
    xs = [p[0] for p in points]
    ys = [p[1] + p[2] for p in points] + [p[1] - p[2] for p in points] + \
        [r[2] for r in references]
    y_ticks = round_ticks(min(ys), max(ys))
    y_lo, y_hi = y_ticks[0], y_ticks[-1]
    fx = math.log10 if x_log else (lambda v: v)
    x_lo, x_hi = fx(min(xs)), fx(max(xs))
    if x_ticks is None:
        x_ticks = [(v, tick_text(v)) for v in round_ticks(min(xs), max(xs))]
        x_lo, x_hi = fx(x_ticks[0][0]), fx(x_ticks[-1][0])
    pad = 0.05 * (x_hi - x_lo or 1)
    x_lo, x_hi = x_lo - pad, x_hi + pad

    def X(v):
        return left + (w - left - right) * (fx(v) - x_lo) / (x_hi - x_lo)

    def Y(v):
        return top + (h - top - bottom) * (y_hi - v) / (y_hi - y_lo)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{left}" y="22" font-size="14">{title}</text>',
           f'<line x1="{left}" y1="{h - bottom}" x2="{w - right}" y2="{h - bottom}" '
           'stroke="black"/>',
           f'<line x1="{left}" y1="{top}" x2="{left}" y2="{h - bottom}" stroke="black"/>',
           f'<text x="{(left + w - right) / 2}" y="{h - 10}" text-anchor="middle">{x_label}'
           '</text>',
           f'<text transform="translate(16,{(top + h - bottom) / 2}) rotate(-90)" '
           f'text-anchor="middle">{y_label}</text>']
    for v in y_ticks:
        out.append(f'<line x1="{left}" y1="{Y(v):.1f}" x2="{w - right}" y2="{Y(v):.1f}" '
                   'stroke="#e5e5e5"/>')
        out.append(f'<text x="{left - 6}" y="{Y(v) + 4:.1f}" text-anchor="end">'
                   f'{tick_text(v)}</text>')
    for v, text in x_ticks:
        out.append(f'<line x1="{X(v):.1f}" y1="{h - bottom}" x2="{X(v):.1f}" '
                   f'y2="{h - bottom + 4}" stroke="black"/>')
        out.append(f'<text x="{X(v):.1f}" y="{h - bottom + 18}" text-anchor="middle">{text}'
                   '</text>')
    legend = 0
    for label, colour, value in references:
        out.append(f'<line x1="{left}" y1="{Y(value):.1f}" x2="{w - right}" y2="{Y(value):.1f}" '
                   f'stroke="{colour}" stroke-dasharray="6,4"/>')
        out.append(f'<text x="{w - right + 10}" y="{top + 18 * legend + 10}" fill="{colour}">'
                   f'- - {label}</text>')
        legend += 1
    for i, s in enumerate(series):
        pts = sorted(s.points)
        dash = ' stroke-dasharray="6,4"' if s.dashed else ""
        shift = 5 * (i - (len(series) - 1) / 2)  # error bars at one x side by side

        def X(v, shift=shift):  # noqa: E306 (the series' shifted x)
            return left + (w - left - right) * (fx(v) - x_lo) / (x_hi - x_lo) + shift

        if len(pts) > 1:
            line = " ".join(f"{X(p[0]):.1f},{Y(p[1]):.1f}" for p in pts)
            out.append(f'<polyline fill="none" stroke="{s.colour}" stroke-width="1.5"{dash} '
                       f'points="{line}"/>')
        for x, y, e in pts:
            out.append(f'<circle cx="{X(x):.1f}" cy="{Y(y):.1f}" r="3" fill="{s.colour}"/>')
            if e > 0:
                out.append(f'<line x1="{X(x):.1f}" y1="{Y(y - e):.1f}" x2="{X(x):.1f}" '
                           f'y2="{Y(y + e):.1f}" stroke="{s.colour}"/>')
        out.append(f'<text x="{w - right + 10}" y="{top + 18 * legend + 10}" '
                   f'fill="{s.colour}">— {s.label}</text>')
        legend += 1
    out.append("</svg>")
    pathlib.Path(path).write_text("\n".join(out) + "\n")
    return True
