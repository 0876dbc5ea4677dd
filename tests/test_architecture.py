"""The dependency direction: the core imports nothing of Telegram, databases or the edges."""

from __future__ import annotations

import ast
from pathlib import Path

CORE = Path(__file__).parent.parent / "bot" / "core"
FORBIDDEN = ("telegram", "apscheduler", "sqlite3", "psycopg", "psycopg_pool", "aiohttp", "httpx", "yaml",
             "bot.tg", "bot.store", "bot.app", "bot.content", "bot.console", "bot.delivery")


def test_core_imports_nothing_of_the_edges() -> None:
    offenders = []
    for path in CORE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN or n in FORBIDDEN
                          or any(n.startswith(f + ".") for f in FORBIDDEN)]
    assert offenders == []
