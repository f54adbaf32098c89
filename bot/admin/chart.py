"""The daily revenue chart of /stats, drawn with matplotlib for a phone.

Telegram shows a photo as wide as the phone's screen, about 390 pt. The figure is 3.9
inches wide, so a point in it is a point on the phone, and rendered at 300 dpi (1170 px,
the pixels of such a screen), so 8-pt labels read as 8-pt text.

A bare `Figure` (no pyplot) renders with the Agg backend and keeps no global state, so
it is safe in a server. This module is the only one importing matplotlib, and handlers
import it when a chart is drawn: the bot starts without loading it. Rendering takes tens
of milliseconds of CPU, so callers run it in a worker thread (`asyncio.to_thread`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from io import BytesIO

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

WIDTH_IN, HEIGHT_IN, DPI = 3.9, 3.4, 300
COLOURS = ("#2f6fdf", "#f0a030", "#3aa76d", "#c04a8b", "#7a7a7a")


@dataclass(frozen=True)
class Labels:
    """The chart's words, already in the admin's language."""

    title: str
    unit: str  # under the title: what the bars count
    average: str  # the legend of the 7-day average line
    empty: str  # the picture of a shop with no payments yet
    empty_hint: str


def thousands(value: float) -> str:
    """`1 500` for 1 500 000 so'm shown in thousands; never `-0`."""
    rounded = round(value)
    return f"{max(rounded, 0):,}".replace(",", " ") if rounded else "0"


def _png(figure: Figure) -> bytes:
    buffer = BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def empty_png(labels: Labels) -> bytes:
    figure = Figure(figsize=(WIDTH_IN, HEIGHT_IN))
    axes = figure.add_axes((0.2, 0.5, 0.6, 0.3))  # an empty frame: where bars would be
    axes.set_xticks([])
    axes.set_yticks([])
    for spine in axes.spines.values():
        spine.set_color("#c8c8c8")
    figure.text(0.5, 0.38, labels.empty, ha="center", va="center", fontsize=12, weight="bold")
    figure.text(0.5, 0.28, labels.empty_hint, ha="center", va="center", fontsize=8,
                color="#606060", wrap=True)  # fmt: skip
    return _png(figure)


def revenue_png(
    days: Sequence[date], by_tariff: Mapping[str, Sequence[int]], labels: Labels
) -> bytes:
    """Revenue per day stacked by tariff (tiyin in, thousands of so'm drawn), with the
    7-day average; the "no payments yet" picture when every day is empty."""
    if not any(any(amounts) for amounts in by_tariff.values()):
        return empty_png(labels)
    figure = Figure(figsize=(WIDTH_IN, HEIGHT_IN))
    axes = figure.subplots()
    positions = list(range(len(days)))
    bottom = [0.0] * len(days)
    for index, (tariff, amounts) in enumerate(sorted(by_tariff.items())):
        heights = [amount / 100_000 for amount in amounts]  # thousands of so'm
        axes.bar(positions, heights, bottom=bottom, width=0.8, label=tariff,
                 color=COLOURS[index % len(COLOURS)])  # fmt: skip
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    average = [
        sum(bottom[max(0, i - 6) : i + 1]) / len(bottom[max(0, i - 6) : i + 1]) for i in positions
    ]
    axes.plot(positions, average, color="#202020", linewidth=1.4, label=labels.average)
    step = max(1, len(days) // 5)
    ticks = positions[::-1][::step][::-1]
    axes.set_xticks(ticks, [days[i].strftime("%d.%m") for i in ticks])
    axes.tick_params(axis="both", labelsize=8, length=2)
    axes.yaxis.set_major_locator(MaxNLocator(nbins=4, integer=True, min_n_ticks=2))
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _pos: thousands(value)))
    axes.set_ylim(0, max(bottom) * 1.3)  # headroom for the legend
    axes.set_xlim(-0.6, len(days) - 0.4)
    axes.grid(axis="y", alpha=0.3)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    axes.set_title(f"{labels.title}\n{labels.unit}", fontsize=9, loc="left")
    axes.legend(fontsize=7, frameon=False, loc="upper left", ncols=3)
    figure.tight_layout(pad=0.6)
    return _png(figure)
