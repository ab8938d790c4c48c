"""Errors a user can cause. Each carries what went wrong, where, and how to fix it.

The CLI prints ``str(error)`` as one line and exits non-zero; no traceback is shown for these.
"""

from __future__ import annotations


class LakehouseError(Exception):
    """Base for user-facing errors: one line naming what, where and the fix."""

    exit_code = 2

    def __init__(self, what: str, *, where: str = "", fix: str = "") -> None:
        self.what = what
        self.where = where
        self.fix = fix
        super().__init__(self.line())

    def line(self) -> str:
        parts = [f"{self.where}: {self.what}" if self.where else self.what]
        if self.fix:
            parts.append(f"fix: {self.fix}")
        return " — ".join(parts)


class ConfigError(LakehouseError):
    """A config file, key or value is missing or wrong."""


class SourceError(LakehouseError):
    """A source's landing data cannot be found or read."""


class DependencyError(LakehouseError):
    """The runtime lacks something the job needs (jars, a package)."""
