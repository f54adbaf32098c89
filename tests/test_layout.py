"""The house rules of the layout, checked on the source:

- imports point one way, web -> bot -> db: db knows no HTTP or Telegram, bot no web;
- no provider is imported by bot/ or db/ (the bot sees `PaymentMethod`s only);
- each provider folder is imported only through the registry (web/providers/__init__.py)
  and by itself, so adding a provider is one folder and one line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {"db": {"bot", "web", "aiogram", "aiohttp"}, "bot": {"web"}}
PROVIDERS = ROOT / "web" / "providers"
REGISTRY = PROVIDERS / "__init__.py"


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def source_files(*folders: str) -> list[Path]:
    return [path for folder in folders for path in (ROOT / folder).rglob("*.py")]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_point_one_way(package: str) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(
            {name.split(".")[0] for name in imported_modules(path)} & FORBIDDEN[package]
        )
        for path in source_files(package)
        if {name.split(".")[0] for name in imported_modules(path)} & FORBIDDEN[package]
    }
    assert not offenders


def provider_folders() -> list[Path]:
    return sorted(path for path in PROVIDERS.iterdir() if (path / "__init__.py").exists())


def test_there_are_provider_folders() -> None:
    assert {path.name for path in provider_folders()} >= {"click", "payme"}


@pytest.mark.parametrize("folder", [path.name for path in provider_folders()])
def test_a_provider_is_imported_only_by_itself_and_the_registry(folder: str) -> None:
    own = PROVIDERS / folder
    prefix = f"web.providers.{folder}"
    offenders = sorted(
        str(path.relative_to(ROOT))
        for path in source_files("web", "bot", "db", "bench")
        if path != REGISTRY
        and own not in path.parents
        and any(name == prefix or name.startswith(prefix + ".") for name in imported_modules(path))
    )
    assert not offenders
