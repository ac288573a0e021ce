"""The PostgreSQL store: many servers and clients on many machines share one database."""

from botwire.backends.postgres.backend import PostgresBackend
from botwire.backends.postgres.connections import parse_url

__all__ = ["PostgresBackend", "parse_url"]
