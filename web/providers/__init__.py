"""The registry of payment providers: adding one is a folder and a line here.

Nothing else imports a provider folder (tests/test_layout.py checks it), so this tuple is
the whole list of what the app offers; the order is the order of the pay buttons.
"""

from __future__ import annotations

from web.providers import click, payme
from web.providers.base import AnyProvider

PROVIDERS: tuple[AnyProvider, ...] = (click.PROVIDER, payme.PROVIDER)
