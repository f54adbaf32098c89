"""The daily revenue chart of /stats, drawn with matplotlib.

A bare `Figure` (no pyplot) renders with the Agg backend and keeps no global state, so
it is safe in a server.

Rendering takes tens of milliseconds of CPU, so callers run it in a worker thread
(`asyncio.to_thread`) and the event loop keeps answering payments meanwhile.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from io import BytesIO

from matplotlib.figure import Figure


def revenue_png(days: Sequence[date], amounts_tiyin: Sequence[int], title: str) -> bytes:
    """A bar chart of revenue per day, in so'm; PNG bytes."""
    figure = Figure(figsize=(10, 4.5), dpi=100)
    axes = figure.subplots()
    axes.bar([day.strftime("%d.%m") for day in days], [a / 100 for a in amounts_tiyin])
    axes.set_title(title)
    axes.tick_params(axis="x", labelrotation=60, labelsize=8)
    axes.yaxis.set_major_formatter(lambda value, _pos: f"{value:,.0f}".replace(",", " "))
    axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    buffer = BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
