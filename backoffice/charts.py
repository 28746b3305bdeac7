"""Server-side SVG: bar charts for the finance page and the state graphs of the state
map. Plain markup, no JavaScript; every number is also in a table next to it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

from django.utils.safestring import SafeString, mark_safe


def bar_chart(
    *,
    labels: list[str],
    series: list[tuple[str, str, list[int]]],
    title: str,
    width: int = 720,
    height: int = 240,
) -> SafeString:
    """Grouped bars: one group per label, one bar per series (name, css class, values)."""
    pad_left, pad_bottom, pad_top = 36, 40, 16
    plot_w, plot_h = width - pad_left - 8, height - pad_bottom - pad_top
    top = max([1, *(v for _, _, values in series for v in values)])
    step = _nice_step(top)
    top = math.ceil(top / step) * step
    groups = max(len(labels), 1)
    group_w = plot_w / groups
    bar_w = max(min(group_w * 0.8 / max(len(series), 1), 28), 2)
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-labelledby="chart-title">',
        f'<title id="chart-title">{escape(title)}</title>',
    ]
    for tick in range(0, top + 1, step):
        y = pad_top + plot_h - plot_h * tick / top
        parts.append(f'<line class="grid" x1="{pad_left}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text class="tick" x="{pad_left - 6}" y="{y + 4:.1f}" text-anchor="end">{tick}</text>')
    every = max(1, math.ceil(groups / 12))
    for i, label in enumerate(labels):
        x0 = pad_left + i * group_w + (group_w - bar_w * len(series)) / 2
        for j, (name, css, values) in enumerate(series):
            value = values[i]
            h = plot_h * value / top
            x = x0 + j * bar_w
            y = pad_top + plot_h - h
            parts.append(
                f'<rect class="bar {escape(css)}" x="{x:.1f}" y="{y:.1f}" width="{bar_w - 1:.1f}" '
                f'height="{h:.1f}"><title>{escape(label)}: {value} {escape(name)}</title></rect>'
            )
        if i % every == 0:
            cx = pad_left + i * group_w + group_w / 2
            parts.append(
                f'<text class="tick" x="{cx:.1f}" y="{height - pad_bottom + 16}" text-anchor="middle">'
                f"{escape(label[5:] if len(label) == 10 else label)}</text>"
            )
    legend_x = pad_left
    for name, css, _ in series:
        parts.append(
            f'<rect class="bar {escape(css)}" x="{legend_x}" y="{height - 14}" width="10" height="10"/>'
        )
        parts.append(f'<text class="tick" x="{legend_x + 14}" y="{height - 5}">{escape(name)}</text>')
        legend_x += 24 + 8 * len(name)
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every interpolated text is escaped above


def _nice_step(top: int) -> int:
    for step in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000):
        if top / step <= 6:
            return step
    return 10 ** len(str(top))


@dataclass(frozen=True)
class Node:
    state: str
    label: str
    count: int
    age: str
    href: str


def state_graph(*, nodes: list[Node], transitions: list[dict], title: str) -> SafeString:
    """States on an ellipse, transitions as arrows; each state links to its filtered list."""
    width, height, r = 760, 340, 46
    cx, cy, rx, ry = width / 2, height / 2, width / 2 - 70, height / 2 - 60
    n = max(len(nodes), 1)
    pos = {
        node.state: (
            cx + rx * math.cos(math.pi + 2 * math.pi * i / n),
            cy + ry * math.sin(math.pi + 2 * math.pi * i / n),
        )
        for i, node in enumerate(nodes)
    }
    mid = f"m{abs(hash(title)) % 10**6}"
    parts = [
        f'<svg class="stategraph" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f'<defs><marker id="{mid}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" class="arrowhead"/></marker></defs>',
    ]
    seen: set[tuple[str, str]] = set()
    for t in transitions:
        src, dst = t["source"], t["target"]
        if src not in pos or dst not in pos or (src, dst) in seen or src == dst:
            continue
        seen.add((src, dst))
        (x1, y1), (x2, y2) = pos[src], pos[dst]
        dx, dy = x2 - x1, y2 - y1
        dist = math.hypot(dx, dy) or 1
        ux, uy = dx / dist, dy / dist
        # Bend the arrow a little so that A->B and B->A do not overlap.
        bx, by = (x1 + x2) / 2 - uy * 24, (y1 + y2) / 2 + ux * 24
        sx, sy = x1 + ux * r, y1 + uy * r
        ex, ey = x2 - ux * (r + 2), y2 - uy * (r + 2)
        parts.append(
            f'<path class="edge" d="M{sx:.1f},{sy:.1f} Q{bx:.1f},{by:.1f} {ex:.1f},{ey:.1f}" '
            f'marker-end="url(#{mid})"><title>{escape(t["name"])}: {escape(src)} → {escape(dst)}</title></path>'
        )
    for node in nodes:
        x, y = pos[node.state]
        css = "node empty" if node.count == 0 else "node"
        parts.append(
            f'<a href="{escape(node.href)}" class="{css}"><circle cx="{x:.1f}" cy="{y:.1f}" r="{r}"/>'
            f'<text x="{x:.1f}" y="{y - 6:.1f}" text-anchor="middle" class="state">{escape(node.state)}</text>'
            f'<text x="{x:.1f}" y="{y + 12:.1f}" text-anchor="middle" class="count">{node.count}</text>'
            f"<title>{escape(node.label)}: {node.count}, oldest {escape(node.age)}</title></a>"
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every interpolated text is escaped above
