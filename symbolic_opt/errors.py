"""The one error a malformed program raises."""

from __future__ import annotations


class ProgramError(ValueError):
    """A program that is not in the grammar or does not type-check.

    Says where (line and column, 1-based, when known) and why, and shows the offending
    line with a caret when the source is known::

        line 3, col 14: unknown function 'sgn'; did you mean sign?
            update = sgn(m)
                     ^
    """

    def __init__(self, reason: str, line: int | None = None, col: int | None = None, source: str | None = None):
        self.reason = reason
        self.line = line
        self.col = col
        self.source_line = _line_of(source, line)
        super().__init__(self._render())

    def _render(self) -> str:
        where = ""
        if self.line is not None:
            where = f"line {self.line}" + (f", col {self.col}" if self.col is not None else "") + ": "
        text = where + self.reason
        if self.source_line is not None:
            stripped = self.source_line.rstrip()
            text += "\n    " + stripped
            if self.col is not None and 0 < self.col <= len(stripped) + 1:
                text += "\n    " + " " * (self.col - 1) + "^"
        return text


def _line_of(source: str | None, line: int | None) -> str | None:
    if source is None or line is None:
        return None
    lines = source.splitlines()
    return lines[line - 1] if 0 < line <= len(lines) else None
