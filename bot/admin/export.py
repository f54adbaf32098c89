"""/export: the payments of a search as an .xlsx Excel opens, or a CSV for Excel set to
Russian or Uzbek.

Rows stream from the database in batches into openpyxl's write-only workbook (it writes
each row to a temporary file as it goes), so a million payments never sit in memory; the
appends run in a worker thread so the event loop keeps answering payments meanwhile.

The CSV has a UTF-8 byte-order mark and `;` between fields: without the mark Excel reads
UTF-8 as the local code page (garbled Cyrillic), and with a Russian or Uzbek locale it
splits fields on `;`, not `,`. Whole amounts are written without decimals so every locale
reads them as numbers.
"""

from __future__ import annotations

import asyncio
import csv
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiogram.utils.i18n import gettext as _

from bot.admin.views import state_name
from db import admin_queries
from db.admin_queries import Filters, PaymentLine
from db.clock import TASHKENT, to_datetime
from db.database import Database
from db.states import PaymentState
from db.tariffs import tariff_name

BATCH = 1000
MONEY_FORMAT = "#,##0.00"
MOMENT_FORMAT = "dd.mm.yyyy hh:mm:ss"
AMOUNT_COLUMN = 10  # zero-based place of the amount in a row
WIDTHS = (10, 20, 10, 26, 14, 26, 12, 20, 16, 8, 14, 12, 20, 20, 24, 6)


def headers() -> list[str]:
    return [
        _("Payment"),
        _("Created"),
        _("Provider"),
        _("Provider id"),
        _("Click paydoc id"),
        _("Order number"),
        _("Buyer id"),
        _("Buyer name"),
        _("Username"),
        _("Tariff"),
        _("Amount, so'm"),
        _("State"),
        _("Paid"),
        _("Cancelled"),
        _("Cancel reason"),
        _("Test"),
    ]


def local(ms: int | None) -> datetime | None:
    """Tashkent wall time without a zone: Excel has no time zones."""
    return to_datetime(ms).astimezone(TASHKENT).replace(tzinfo=None) if ms else None


def som(tiyin: int) -> Decimal:
    return Decimal(tiyin) / 100


def values(line: PaymentLine, titles: dict[str, str]) -> list[Any]:
    reason = line.cancel_note or ("" if line.cancel_reason is None else str(line.cancel_reason))
    return [
        line.id,
        local(line.create_time),
        titles.get(line.provider, line.provider),
        line.provider_id,
        line.click_paydoc_id,
        line.merchant_trans_id,
        line.user_id,
        line.first_name,
        line.username or "",
        tariff_name(line.tariff),
        som(line.amount),
        state_name(line.state),
        local(line.perform_time),
        local(line.cancel_time),
        reason,
        _("yes") if line.test else "",
    ]


@dataclass
class Sums:
    count: int = 0
    paid: int = 0
    refunded: int = 0

    def add(self, line: PaymentLine) -> None:
        self.count += 1
        if line.state == PaymentState.PAID:
            self.paid += line.amount
        elif line.state == PaymentState.REFUNDED:
            self.refunded += line.amount


async def _batches(db: Database, filters: Filters, sums: Sums) -> AsyncIterator[list[PaymentLine]]:
    batch: list[PaymentLine] = []
    async with db.report() as conn:
        async for line in admin_queries.stream_lines(conn, filters, BATCH):
            sums.add(line)
            batch.append(line)
            if len(batch) == BATCH:
                yield batch
                batch = []
    if batch:
        yield batch


async def write_xlsx(db: Database, filters: Filters, titles: dict[str, str], path: Path) -> Sums:
    # openpyxl is imported here, not at the top: it brings numpy and PIL along (19 MiB
    # measured), which an idle process would otherwise hold for one admin command.
    from openpyxl import Workbook  # type: ignore[import-untyped]
    from openpyxl.cell import WriteOnlyCell  # type: ignore[import-untyped]
    from openpyxl.styles import Font  # type: ignore[import-untyped]

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(_("Payments"))

    def cells(row: list[Any]) -> list[Any]:
        made: list[Any] = []
        for value in row:
            cell = WriteOnlyCell(sheet, value=value)
            if isinstance(value, Decimal):
                cell.number_format = MONEY_FORMAT
            elif isinstance(value, datetime):
                cell.number_format = MOMENT_FORMAT
            made.append(cell)
        return made

    sheet.freeze_panes = "A2"
    # Excel shows `#####` for a date wider than its column: widths are set before any row.
    for letter, width in zip("ABCDEFGHIJKLMNOP", WIDTHS, strict=True):
        sheet.column_dimensions[letter].width = width
    bold = Font(bold=True)
    header = []
    for title in headers():
        cell = WriteOnlyCell(sheet, value=title)
        cell.font = bold
        header.append(cell)
    sheet.append(header)
    sums = Sums()

    def append(rows: Sequence[list[Any]]) -> None:
        for row in rows:
            sheet.append(cells(row))

    async for batch in _batches(db, filters, sums):
        rows = [values(line, titles) for line in batch]
        await asyncio.to_thread(append, rows)
    for label, amount in ((_("Paid in all"), sums.paid), (_("Refunded in all"), sums.refunded)):
        row: list[Any] = [None] * len(headers())
        row[0], row[AMOUNT_COLUMN] = label, som(amount)
        total = cells(row)
        total[0].font = total[AMOUNT_COLUMN].font = bold
        sheet.append(total)
    await asyncio.to_thread(workbook.save, path)
    return sums


def _csv_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        whole = value.to_integral_value()
        return str(whole) if whole == value else f"{value:.2f}".replace(".", ",")
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


async def write_csv(db: Database, filters: Filters, titles: dict[str, str], path: Path) -> Sums:
    sums = Sums()
    with path.open("w", newline="", encoding="utf-8-sig") as file:
        writer = csv.writer(file, delimiter=";")
        writer.writerow(headers())
        async for batch in _batches(db, filters, sums):
            writer.writerows([_csv_text(v) for v in values(line, titles)] for line in batch)
    return sums
