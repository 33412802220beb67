"""A saga's timeline as a page: each attempt of each step a bar on one time axis, grouped
by service, coloured by how it ended, with the worker that ran it; each bar links to the
task in Flower. Plain SVG with presentation attributes: no script, no stylesheet, so the
gateway's strict Content-Security-Policy holds."""

from __future__ import annotations

from datetime import datetime
from html import escape
from itertools import groupby

from models.db import utcnow
from models.saga import COMPENSATION, Saga, SagaStep

WIDTH, LABELS, ROW, HEAD = 1100, 420, 26, 96
ANCHORS = ("start", "middle", "middle", "middle", "end")  # the axis' five tick labels
COLOURS = {"succeeded": "#2e7d32", "failed": "#ef6c00", "refused": "#c62828",
           "lost": "#757575", "superseded": "#bdbdbd", "running": "#1565c0"}


def page(saga: Saga, flower_url: str) -> str:
    """The HTML page of the saga's timeline; `saga.steps` must be loaded."""
    start = saga.created_at
    end = max([saga.ended_at or utcnow(),
               *(s.ended_at or s.started_at for s in saga.steps if s.started_at)])
    span = max((end - start).total_seconds(), 0.001)
    # Services in the order the saga first reached them; each one's attempts as they came.
    first = {}
    for step in saga.steps:
        first.setdefault(_service(step), step.id)
    services = groupby(sorted(saga.steps, key=lambda s: (first[_service(s)], s.id)),
                       key=_service)
    rows: list[str] = []
    y = HEAD
    for service, attempts in services:
        rows.append(_text(8, y + 17, service, weight="bold"))
        y += ROW
        for attempt in attempts:
            rows.append(_bar(attempt, y, start, span, flower_url))
            y += ROW
    title = f"{saga.kind} saga {saga.id}: {saga.status}"
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{y + 16}" '
           f'font-family="sans-serif" font-size="12" role="img" aria-label="{escape(title)}">'
           f'{_text(8, 22, title, size=16, weight="bold")}'
           f'{_text(8, 44, _caption(saga, span), fill="#555")}'
           f'{_text(8, 62, LEGEND, fill="#555")}'
           f'{_axis(y, span)}{"".join(rows)}</svg>')
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f"<title>{escape(title)}</title></head><body>{svg}</body></html>")


def _service(step: SagaStep) -> str:
    return step.task_name.partition(".")[0]


LEGEND = ("bars: succeeded green, failed orange, refused red, lost grey, running blue; "
          "compensations (undo) outlined; each bar opens its task in Flower")


def _caption(saga: Saga, span: float) -> str:
    error = f": {saga.error}" if saga.error else ""
    return f"started {saga.created_at:%Y-%m-%d %H:%M:%S} UTC, {span * 1000:.0f} ms{error}"


def _axis(bottom: int, span: float) -> str:
    ticks = []
    for i in range(5):
        x = LABELS + (WIDTH - LABELS - 20) * i / 4
        ticks.append(f'<line x1="{x:.1f}" y1="{HEAD - 8}" x2="{x:.1f}" y2="{bottom}" '
                     f'stroke="#e0e0e0"/>'
                     f'{_text(x, HEAD - 12, f"{span * 250 * i:.0f} ms", anchor=ANCHORS[i])}')
    return "".join(ticks)


def _bar(attempt: SagaStep, y: int, start: datetime, span: float, flower_url: str) -> str:
    scale = (WIDTH - LABELS - 20) / span
    began = attempt.started_at or start
    x = LABELS + (began - start).total_seconds() * scale
    took = None if attempt.took is None else attempt.took.total_seconds()
    width = max((took or 0) * scale, 3)
    colour = COLOURS.get(attempt.status, "#9e9e9e")
    undoing = attempt.phase == COMPENSATION
    label = (f"{attempt.step} {'undo' if undoing else 'do'} #{attempt.attempt} "
             f"{attempt.status} on {attempt.worker or '-'}"
             + (f", {took * 1000:.0f} ms" if took is not None else ""))
    shape = (f'<rect x="{x:.1f}" y="{y + 4}" width="{width:.1f}" height="{ROW - 8}" '
             f'fill="{"#ffffff" if undoing else colour}" stroke="{colour}" stroke-width="2">'
             f"<title>{escape(label)}{escape(': ' + attempt.error) if attempt.error else ''}"
             f"</title></rect>")
    if attempt.task_id:
        shape = (f'<a href="{escape(flower_url)}/task/{escape(attempt.task_id)}" '
                 f'target="_blank">{shape}</a>')
    return _text(24, y + 17, label) + shape


def _text(x: float, y: float, text: str, *, size: int = 12, weight: str = "normal",
          fill: str = "#212121", anchor: str = "start") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" font-weight="{weight}" '
            f'fill="{fill}" text-anchor="{anchor}">{escape(text)}</text>')
