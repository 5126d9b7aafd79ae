"""Errors a user can act on. Each names the file (if any) and what to do."""

from __future__ import annotations

from pathlib import Path


class XMarkError(Exception):
    """Base class: a problem with the user's input or setup, not a bug."""


class DataError(XMarkError, ValueError):
    """An image, CSV or dataset that cannot be used as given."""

    def __init__(self, message: str, path: str | Path | None = None):
        self.path = str(path) if path is not None else None
        super().__init__(f"{self.path}: {message}" if self.path else message)


class CheckpointError(XMarkError, ValueError):
    """A checkpoint that is missing, malformed or unsafe to load."""


class SuspectError(XMarkError, RuntimeError):
    """A suspect model (local or remote) that did not answer as the API requires."""
