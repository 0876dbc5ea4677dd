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


BOT = Path(__file__).parent.parent / "bot"
# Path methods, and os/shutil/tempfile functions, that create, change or delete files.
WRITING_METHODS = {"write_text", "write_bytes", "unlink", "rmdir", "mkdir", "touch", "symlink_to", "hardlink_to",
                   "chmod"}
WRITING_FUNCTIONS = {("os", name) for name in ("replace", "rename", "renames", "remove", "unlink", "fdopen",
                                               "mkdir", "makedirs", "rmdir", "removedirs", "chmod", "symlink", "link",
                                               "truncate")}
WRITING_MODULES = {"shutil", "tempfile"}
# Exactly these modules may write files: the content wing's one writer, and the SQLite driver (its database folder).
FILE_WRITERS = {"bot/content/files.py", "bot/store/drivers.py"}


def _writes(tree: ast.AST) -> list[str]:
    """The file-writing calls in a module: `path.write_text(...)`, `os.replace(...)`, `open(p, "w")` and the like."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute):
            owner = func.value.id if isinstance(func.value, ast.Name) else None
            if (owner, func.attr) in WRITING_FUNCTIONS or owner in WRITING_MODULES:
                found.append(f"{owner}.{func.attr}")
            elif owner not in ("os", "shutil", "tempfile") and func.attr in WRITING_METHODS:
                found.append(f".{func.attr}")
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if name == "open":
            positional = node.args[1:2] if isinstance(func, ast.Name) else node.args[:1]  # open(p, mode), p.open(mode)
            modes = [arg.value for arg in [*positional, *(k.value for k in node.keywords if k.arg == "mode")]
                     if isinstance(arg, ast.Constant) and isinstance(arg.value, str)]
            if any(set(mode) & set("wax+") for mode in modes):
                found.append("open for writing")
    return found


def test_only_the_content_files_module_writes_into_the_content_folder() -> None:
    writers = {}
    for path in sorted(BOT.rglob("*.py")):
        calls = _writes(ast.parse(path.read_text()))
        if calls:
            writers[path.relative_to(BOT.parent).as_posix()] = calls
    assert set(writers) == FILE_WRITERS, writers
