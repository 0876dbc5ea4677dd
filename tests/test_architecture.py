"""The dependency direction, module by module: who may import the core's neighbours, drivers and Telegram."""

from __future__ import annotations

import ast
import sys
from functools import cache
from pathlib import Path

import pytest

BOT = Path(__file__).parent.parent / "bot"
DRIVERS = ("psycopg", "psycopg_pool", "sqlite3")


def module_name(path: Path) -> str:
    """`bot/core/admin.py` -> `bot.core.admin`; a package's `__init__.py` is the package."""
    parts = path.relative_to(BOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def imports() -> dict[str, tuple[str, ...]]:
    """Every module of bot/ with every module it imports, anywhere in it (functions and TYPE_CHECKING too);
    `from a import b` counts as importing both `a` and `a.b`, since b may be a module."""
    found = {}
    for path in sorted(BOT.rglob("*.py")):
        name = module_name(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        names: list[str] = []
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                names.append(base)
                names += [f"{base}.{alias.name}" for alias in node.names if alias.name != "*"]
        found[name] = tuple(names)
    return found


def within(name: str, *roots: str) -> bool:
    """True when module `name` is one of `roots` or inside one of them (exact names, not prefixes)."""
    return any(name == root or name.startswith(root + ".") for root in roots)


def offenders(may_import: str, wanted: tuple[str, ...], allowed: tuple[str, ...]) -> list[str]:
    """`module: import` for each module outside `allowed` importing one of `wanted` (`may_import` names the rule)."""
    return [f"{module}: {name} ({may_import})" for module, names in imports().items() if not within(module, *allowed)
            for name in names if within(name, *wanted)]


def test_the_scan_sees_the_imports_it_judges() -> None:
    found = imports()
    assert "telegram" in found["bot.tg.frontend"] and "bot.core.commands.dispatch" in found["bot.tg.frontend"]
    assert "psycopg" in found["bot.store.drivers"] and "bot.core.messages" in found["bot.core.commands"]


def test_the_core_imports_only_the_core_and_the_standard_library() -> None:
    stdlib = sys.stdlib_module_names | {"__future__"}
    bad = [f"{module}: {name}" for module, names in imports().items() if within(module, "bot.core")
           for name in names if not within(name, "bot.core") and name.split(".")[0] not in stdlib]
    assert bad == []


@pytest.mark.xfail(strict=True, reason="psycopg still in bot/cluster.py and bot/content_sync.py until the content "
                                       "wing lands")
def test_only_the_store_imports_a_database_driver() -> None:
    assert offenders("only bot.store", DRIVERS, ("bot.store",)) == []


def test_only_the_telegram_front_end_and_the_composition_root_import_telegram() -> None:
    assert offenders("only bot.tg and bot.app", ("telegram",), ("bot.tg", "bot.app")) == []
