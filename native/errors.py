"""Typed exceptions raised by the gramdex engine binding."""

from __future__ import annotations


class GramdexError(Exception):
    """Base class of every error the engine raises."""


class IndexFormatError(GramdexError):
    """The index files are missing, truncated, inconsistent or corrupt; the message names the file."""


class InvalidQueryError(GramdexError, ValueError):
    """A query argument is out of range or malformed; the message names the argument."""


class DeadlineExceededError(GramdexError, TimeoutError):
    """The query ran past its deadline; the engine stopped its work."""


class EngineIOError(GramdexError, OSError):
    """An index file could not be opened, read or mapped."""
