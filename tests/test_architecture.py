"""The dependency direction, module by module: who may import the core's neighbours, drivers and Telegram."""

from __future__ import annotations

import ast
import sys
from functools import cache
from pathlib import Path

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
    assert "telegram" in found["bot.tg.frontend"] and "bot.handling.dispatch_counted" in found["bot.tg.frontend"]
    assert "psycopg" in found["bot.store.drivers"] and "bot.core.messages" in found["bot.core.commands"]


# Libraries the core may use, each in one module: Babel formats dates and compiles catalogues (no I/O of its own);
# OpenCC makes Simplified Chinese input Traditional.
CORE_LIBRARIES = {"bot.core.i18n": ("babel",), "bot.core.chinese": ("opencc",)}


def test_the_core_imports_only_the_core_and_the_standard_library() -> None:
    stdlib = sys.stdlib_module_names | {"__future__"}
    bad = [f"{module}: {name}" for module, names in imports().items() if within(module, "bot.core")
           for name in names if not within(name, "bot.core", *CORE_LIBRARIES.get(module, ()))
           and name.split(".")[0] not in stdlib]
    assert bad == []


def test_only_the_core_s_i18n_module_imports_babel() -> None:
    assert offenders("only bot.core.i18n", ("babel",), ("bot.core.i18n", "bot.locale")) == []


def test_only_the_store_imports_a_database_driver() -> None:
    assert offenders("only bot.store", DRIVERS, ("bot.store",)) == []


def test_only_the_telegram_front_end_and_the_composition_root_import_telegram() -> None:
    assert offenders("only bot.tg and bot.app", ("telegram",), ("bot.tg", "bot.app")) == []


def test_only_the_slack_front_end_imports_slack_bolt_and_slack_sdk() -> None:
    assert "slack_bolt.async_app" in imports()["bot.slack.connect"]  # the scan sees them
    assert offenders("only bot.slack", ("slack_bolt", "slack_sdk"), ("bot.slack",)) == []


def test_the_slack_front_end_imports_no_telegram() -> None:
    bad = [f"{module}: {name}" for module, names in imports().items() if within(module, "bot.slack")
           for name in names if within(name, "telegram", "bot.tg")]
    assert bad == []


def test_only_the_page_reader_imports_the_html_library() -> None:
    # Pages are read one way, with declared selectors; the content validator asks bot.sources.page about them.
    assert offenders("only bot.sources.page", ("selectolax",), ("bot.sources.page",)) == []


# The shared path: what every platform's chats go through. It learns a platform only from a `Platform` it is given.
SHARED = ("bot.core", "bot.delivery", "bot.digest_scheduler")
# Where the core names the platforms it knows: the address type checks each platform's ids (a bare number typed to
# /preview is a Telegram chat id, as it always was).
ADDRESS_REGISTRY = ("bot.core.addresses", "bot.core.numbers")
# Bot API words: a chat id, its methods and parameters. None has a place in a platform-neutral module.
TELEGRAM_WORDS = {"chat_id", "send_message", "sendmessage", "parse_mode", "message_thread_id", "migrate_to_chat_id",
                  "retry_after", "disable_notification", "forbidden", "badrequest", "chatmigrated", "bot_api"}


def identifiers(path: Path) -> set[str]:
    """Every name a module defines, uses or passes as a keyword (not its strings, comments or docstrings)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Name):
            found.add(node.id)
        elif isinstance(node, ast.Attribute):
            found.add(node.attr)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found.add(node.name)
        elif isinstance(node, (ast.arg, ast.keyword)) and node.arg:
            found.add(node.arg)
        elif isinstance(node, ast.alias):
            found.add(node.asname or node.name.rpartition(".")[2])
    return found


def test_the_shared_path_imports_no_front_end() -> None:
    fronts = ("telegram", "bot.tg", "bot.console", "bot.app", "slack_sdk", "slack_bolt", "bot.slack")
    bad = [f"{module}: {name}" for module, names in imports().items() if within(module, *SHARED)
           for name in names if within(name, *fronts)]
    assert bad == []


def test_the_shared_path_names_nothing_of_telegram() -> None:
    bad = []
    for path in sorted(BOT.rglob("*.py")):
        module = module_name(path)
        if not within(module, *SHARED) or within(module, *ADDRESS_REGISTRY):
            continue
        words = {name for name in identifiers(path)
                 if name.lower() in TELEGRAM_WORDS or "telegram" in name.lower() or name.lower().startswith("tg_")}
        bad += [f"{module}: {word}" for word in sorted(words)]
    assert bad == []


def test_the_telegram_check_finds_telegram_words() -> None:
    sample = BOT / "tg" / "sender.py"
    assert {"chat_id", "parse_mode", "telegram_id"} <= identifiers(sample)


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


def test_only_the_metrics_adapter_imports_prometheus_client() -> None:
    # The core and the delivery engine count through the Metrics port (bot.core.ports); one module holds the library.
    assert offenders("only bot.metrics", ("prometheus_client",), ("bot.metrics",)) == []
    assert "prometheus_client" in imports()["bot.metrics"]
