"""What goes wrong with content: one error with its place, all of a change's errors, and a file that is not text."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ContentError:
    """One problem in a content file, printed as `file:line: key: message`."""

    file: str
    line: int
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.key}: {self.message}"


class InvalidContent(Exception):
    """Raised when content/ has errors; carries all of them."""

    def __init__(self, errors: list[ContentError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(error) for error in errors))


@dataclass(frozen=True)
class Unreadable:
    """A content file that could not be read as text; its one error says why."""

    message: str
