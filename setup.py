"""The one build step pyproject.toml cannot declare: compile the gettext catalogues (.po -> .mo) with Babel.

`pip install .` and `pip install -e .` both run build_py, so the compiled catalogues are there after either
command; they are build output, never committed (.gitignore). Everything else about the package is in
pyproject.toml.
"""

from __future__ import annotations

from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from setuptools import setup
from setuptools.command.build_py import build_py

LOCALE_DIR = Path(__file__).resolve().parent / "bot" / "locale"


def compile_catalogues(locale_dir: Path = LOCALE_DIR) -> list[Path]:
    """Compile every `<locale>/LC_MESSAGES/*.po` under `locale_dir` beside itself, as `pybabel compile` does
    (fuzzy entries left out); returns the .mo files written."""
    written = []
    for po in sorted(locale_dir.glob("*/LC_MESSAGES/*.po")):
        with po.open("rb") as source:
            catalogue = read_po(source, locale=po.parent.parent.name)
        mo = po.with_suffix(".mo")
        with mo.open("wb") as compiled:
            write_mo(compiled, catalogue)
        written.append(mo)
    return written


class BuildWithCatalogues(build_py):
    """build_py that compiles the catalogues first, so the package data it copies includes the .mo files."""

    def run(self) -> None:
        for mo in compile_catalogues():
            print(f"compiled {mo.relative_to(LOCALE_DIR.parent.parent)}")
        super().run()


setup(cmdclass={"build_py": BuildWithCatalogues})
