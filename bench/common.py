"""What every benchmark shares: the machine's description, the result table and JSON file, bulk-filled stores."""

from __future__ import annotations

import gc
import json
import os
import platform
import resource
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bot.store import SqlStore

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).parent.parent
CONTENT = ROOT / "content"
FILL_CHUNK = 50_000


def machine() -> dict[str, Any]:
    """nproc, CPU model, RAM and Python version of this machine."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"nproc": os.cpu_count(), "cpu": model, "ram_gb": round(ram_gb, 1),
            "python": platform.python_version(), "platform": platform.platform()}


class GcPauses:
    """Records how long this process's garbage collections stopped it (gc.callbacks), by generation."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, float]] = []
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses.append((info["generation"], time.perf_counter() - self._started))

    def summary(self) -> dict[str, float]:
        """Full (generation 2) collections: how many, their longest and total pause; all collections' total."""
        full = [seconds for generation, seconds in self.pauses if generation == 2]
        return {"gc_full": len(full), "gc_full_max_ms": 1000 * max(full, default=0.0),
                "gc_full_total_s": sum(full), "gc_total_s": sum(seconds for _, seconds in self.pauses)}


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def print_table(title: str, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    """Print rows as an aligned plain-text table."""
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
        if isinstance(value, int) and not isinstance(value, bool):
            return f"{value:,}"
        return "" if value is None else str(value)

    table = [[cell(row.get(column)) for column in columns] for row in rows]
    widths = [max(len(column), *(len(line[i]) for line in table)) for i, column in enumerate(columns)]
    print(f"\n{title}")
    print("  ".join(column.ljust(width) for column, width in zip(columns, widths, strict=True)))
    print("  ".join("-" * width for width in widths))
    for line in table:
        print("  ".join(value.rjust(width) for value, width in zip(line, widths, strict=True)))


def write_results(module: str, name: str, payload: dict[str, Any]) -> Path:
    """Write bench/results/<name>.json with the machine and the command line (`python -m bench.<module> ...`)."""
    folder = Path(os.environ.get("BENCH_RESULTS") or RESULTS)  # the smoke tests write elsewhere
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    document = {"benchmark": name, "command": " ".join([Path(sys.executable).name, "-m", f"bench.{module}",
                                                          *sys.argv[1:]]),
                "machine": machine(), **payload}
    path.write_text(json.dumps(document, indent=2, default=str))
    print(f"\nwrote {path}")
    return path


async def fill_subscriptions(store: SqlStore, count: int, due: Sequence[datetime], *, first_chat: int = 1,
                             created_at: datetime | None = None) -> None:
    """Insert `count` daily 09:00 Hong Kong subscriptions in bulk, the i-th due at due[i % len(due)]."""
    created = created_at or due[0]
    columns = ("chat, thread_id, chat_kind, cadence, weekday, at_time, timezone, sections, spotlight, active,"
               " created_at, updated_at, next_due_at")
    sql = f"INSERT INTO subscriptions ({columns}) VALUES (?, 0, 'private', 'daily', NULL, '09:00', 'Asia/Hong_Kong'," \
          " '', TRUE, TRUE, ?, ?, ?)"
    for start in range(0, count, FILL_CHUNK):
        rows = [(f"telegram:{first_chat + i}", created, created, due[i % len(due)])
                for i in range(start, min(count, start + FILL_CHUNK))]
        async with store.driver.transaction() as tx:
            await tx.executemany(sql, rows)


def spread_over_a_day(start: datetime, slots: int = 1440) -> list[datetime]:
    """One due time per minute of the day from `start` (a realistic spread of next_due_at)."""
    return [start + timedelta(minutes=i) for i in range(slots)]
