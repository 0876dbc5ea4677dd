"""What changed between two catalogues, for an admin: sections, initiatives and updates added, changed, removed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from bot.content.errors import ContentError
from bot.core.admin import outcome_text
from bot.core.catalogue import Catalogue

DESCRIBE_LIMIT = 5

_T = TypeVar("_T")


@dataclass(frozen=True)
class ContentDiff:
    """What changed between two catalogues: section ids, initiative keys and update keys per bucket."""

    sections_added: tuple[str, ...] = ()
    sections_changed: tuple[str, ...] = ()
    sections_removed: tuple[str, ...] = ()
    initiatives_added: tuple[str, ...] = ()
    initiatives_changed: tuple[str, ...] = ()
    initiatives_removed: tuple[str, ...] = ()
    updates_added: tuple[str, ...] = ()
    updates_changed: tuple[str, ...] = ()
    updates_removed: tuple[str, ...] = ()
    about_changed: bool = False
    sources_added: tuple[str, ...] = ()
    sources_changed: tuple[str, ...] = ()  # a source's settings, or the keyword rules (named "(rules)")
    sources_removed: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        """True when nothing a reader can see changed."""
        return not self.about_changed and not any(any(lists) for lists in self._buckets().values())

    def _buckets(self) -> dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]]:
        return {
            "sections": (self.sections_added, self.sections_changed, self.sections_removed),
            "initiatives": (self.initiatives_added, self.initiatives_changed, self.initiatives_removed),
            "updates": (self.updates_added, self.updates_changed, self.updates_removed),
            "sources": (self.sources_added, self.sources_changed, self.sources_removed),
        }

    def describe(self, limit: int = DESCRIBE_LIMIT) -> str:
        """A one-line summary for an admin, naming at most `limit` items per list."""
        if self.empty:
            return "no changes"
        parts = []
        for kind, (added, changed, removed) in self._buckets().items():
            if kind == "sources" and not (added or changed or removed):
                continue  # most changes are not to the sources file: keep the usual line as it was
            part = f"{kind}: +{len(added)} ~{len(changed)} -{len(removed)}"
            named = [f"{label}: {_capped(names, limit)}"
                     for label, names in (("added", added), ("changed", changed), ("removed", removed)) if names]
            parts.append(f"{part} ({' | '.join(named)})" if named else part)
        if self.about_changed:
            parts.append("about: changed")
        return "; ".join(parts)


def _capped(names: tuple[str, ...], limit: int) -> str:
    shown = ", ".join(names[:limit])
    return f"{shown} … and {len(names) - limit} more" if len(names) > limit else shown


def _keyed(old: Mapping[str, _T], new: Mapping[str, _T]) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    added = tuple(key for key in new if key not in old)
    changed = tuple(key for key in new if key in old and old[key] != new[key])
    removed = tuple(key for key in old if key not in new)
    return added, changed, removed


def diff_catalogues(old: Catalogue, new: Catalogue) -> ContentDiff:
    """Compare two catalogues by section id, initiative key and update key."""
    sections = _keyed({s.id: s for s in old.sections}, {s.id: s for s in new.sections})
    initiatives = _keyed({i.key: i for i in old.initiatives}, {i.key: i for i in new.initiatives})
    updates = _keyed({u.key: u for u in old.updates}, {u.key: u for u in new.updates})
    old_sources = {s.id: s for s in old.watchlist.sources} if old.watchlist else {}
    new_sources = {s.id: s for s in new.watchlist.sources} if new.watchlist else {}
    sources_added, sources_changed, sources_removed = _keyed(old_sources, new_sources)
    old_rules = old.watchlist.rules if old.watchlist else None
    new_rules = new.watchlist.rules if new.watchlist else None
    if old_rules is not None and new_rules is not None and (
            old_rules.keywords != new_rules.keywords
            or dict(old_rules.section_keywords) != dict(new_rules.section_keywords)):
        sources_changed = ("(rules)", *sources_changed)
    return ContentDiff(*sections, *initiatives, *updates, about_changed=old.about != new.about,
                       sources_added=sources_added, sources_changed=sources_changed, sources_removed=sources_removed)


@dataclass(frozen=True)
class ContentChange:
    """The outcome of a reload, upload or rollback."""

    ok: bool
    errors: tuple[ContentError, ...] = ()
    diff: ContentDiff | None = None
    path: str | None = None
    version: str = ""

    def describe(self, limit: int = 20) -> str:
        """Plain text for an admin: the diff when it worked, else every error (up to `limit`) with its place."""
        return outcome_text(self, limit)
