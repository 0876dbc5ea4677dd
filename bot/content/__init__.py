"""The content wing: curated YAML on disk, validated once per change, and the catalogue in force.

`parse` reads one file's YAML, `validate` turns {relative path: text} into a Catalogue or every error, `files` is
the only code that touches the folder, `library` holds what is in force, `manager` changes it (reload, upload,
rollback and their history), `watch` reloads on edits, `replicate` shares changes between replicas.
"""

from __future__ import annotations

from bot.content.errors import ContentError, InvalidContent
from bot.content.library import ContentLibrary, load_catalogue
from bot.content.parse import MAX_DEPTH, MAX_FILE_BYTES, parse_yaml
from bot.content.validate import validate_texts

__all__ = [
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "ContentError",
    "ContentLibrary",
    "InvalidContent",
    "load_catalogue",
    "parse_yaml",
    "validate_texts",
]
