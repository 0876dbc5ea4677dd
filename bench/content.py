"""Content benchmark: time to load and validate content/, and the same content replicated 100 times.

    python -m bench.content              # content/ and 100x (5 runs each)
    python -m bench.content --quick      # content/ and 3x, one run each

The replicated copy renames every section id, title and alias (Chinese aliases too), every initiative and every
update (copy k of `finance` is `finance-k`, related sections point inside copy k), so it is valid content of 100
times the size.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from bench.common import CONTENT, print_table, write_results
from bot.content import load_catalogue


class _WrittenOut(yaml.SafeDumper):
    """Writes a repeated value out each time: content files may not hold anchors or aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        """Never an alias (PyYAML would alias a date object shared by copies)."""
        return True


def _dump(data: Any) -> str:
    return yaml.dump(data, Dumper=_WrittenOut, allow_unicode=True, sort_keys=False)


def _suffixed(value: str, copy: int) -> str:
    return f"{value}-{copy}"


def replicate(source: Path, target: Path, copies: int) -> None:
    """Write `copies` renamed copies of the content in `source` into `target`."""
    (target / "sections").mkdir(parents=True)
    updates: list[dict[str, Any]] = []
    source_updates = yaml.safe_load((source / "updates.yaml").read_text(encoding="utf-8"))["updates"]
    for copy in range(copies):
        for path in sorted((source / "sections").glob("*.yaml")):
            section = yaml.safe_load(path.read_text(encoding="utf-8"))
            section["id"] = _suffixed(section["id"], copy)
            section["order"] = copy * 1000 + int(section.get("order", 0))
            section["title"] = f"{section['title']} ({copy})"
            section["aliases"] = [_suffixed(alias, copy) for alias in section.get("aliases", [])]
            section["related"] = [_suffixed(name, copy) for name in section.get("related", [])]
            for translation in (section[key] for key in ("zh-Hant", "en") if key in section):
                translation["aliases"] = [_suffixed(alias, copy) for alias in translation.get("aliases", [])]
            for item in section.get("initiatives", []):
                item["name"] = f"{item['name']} ({copy})"
            (target / "sections" / f"{section['id']}.yaml").write_text(
                _dump(section), encoding="utf-8")
        for update in source_updates:
            updates.append({**update, "title": f"{update['title']} ({copy})",
                            "sections": [_suffixed(name, copy) for name in update["sections"]]})
    (target / "updates.yaml").write_text(_dump({"updates": updates}), encoding="utf-8")
    (target / "about.yaml").write_text((source / "about.yaml").read_text(encoding="utf-8"), encoding="utf-8")


def time_load(directory: Path, runs: int) -> dict[str, Any]:
    """Median and best of `runs` load_catalogue calls (read, parse, validate)."""
    now = datetime.now(UTC)
    times = []
    catalogue = None
    for _ in range(runs):
        start = time.perf_counter()
        catalogue = load_catalogue(directory, now=now)
        times.append(time.perf_counter() - start)
    assert catalogue is not None
    size = sum(p.stat().st_size for p in directory.rglob("*.yaml"))
    return {"sections": len(catalogue.sections), "initiatives": len(catalogue.initiatives),
            "updates": len(catalogue.updates), "yaml_kb": size / 1024, "median_ms": statistics.median(times) * 1000,
            "best_ms": min(times) * 1000, "runs": runs}


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Time content/ and its scaled copy; print the table and write bench/results/content.json."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.scale, args.runs = 3, 1
    rows = [{"content": "content/", **time_load(CONTENT, args.runs)}]
    with tempfile.TemporaryDirectory() as tmp:
        scaled = Path(tmp) / "content"
        replicate(CONTENT, scaled, args.scale)
        rows.append({"content": f"content/ x{args.scale}", **time_load(scaled, args.runs)})
    print_table("Content load + validation (load_catalogue)", rows,
                ["content", "sections", "initiatives", "updates", "yaml_kb", "median_ms", "best_ms", "runs"])
    write_results("content", "content", {"rows": rows})
    return rows


if __name__ == "__main__":
    main()
