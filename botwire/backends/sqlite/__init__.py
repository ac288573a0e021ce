"""The embedded store: one SQLite file shared by every thread and process on this machine."""

from botwire.backends.sqlite.backend import SQLiteBackend

__all__ = ["SQLiteBackend"]
