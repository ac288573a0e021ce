"""The PostgreSQL store's schema: its migrations, applied once under an advisory lock."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg

from botwire.backends.search import DEFAULT_LANGUAGE, tsvector
from botwire.errors import BackendUnavailable

Migration = str | Callable[[psycopg.Connection[Any], "Progress | None"], None]
Progress = Callable[[int, int], None]
MIGRATIONS: list[Migration] = [
    # 1: the first schema. Keys sort by code point (COLLATE "C"), as on every backend.
    """
    CREATE TABLE botwire_entries (
        id BIGSERIAL PRIMARY KEY,
        ns TEXT COLLATE "C" NOT NULL,
        key TEXT COLLATE "C" NOT NULL,
        kind SMALLINT NOT NULL,
        value TEXT,
        size BIGINT NOT NULL,
        version BIGINT NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        expires_at BIGINT,
        ttl DOUBLE PRECISION,
        list_lo BIGINT,
        list_hi BIGINT,
        UNIQUE (ns, key)
    );
    CREATE INDEX botwire_entries_expiry ON botwire_entries (expires_at)
        WHERE expires_at IS NOT NULL;
    CREATE TABLE botwire_list_items (
        entry_id BIGINT NOT NULL REFERENCES botwire_entries (id) ON DELETE CASCADE,
        seq BIGINT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (entry_id, seq)
    );
    CREATE FUNCTION botwire_drop_items() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        DELETE FROM botwire_list_items WHERE entry_id = OLD.id;
        RETURN NULL;
    END $$;
    CREATE TRIGGER botwire_entries_replace_items AFTER UPDATE OF kind ON botwire_entries
        FOR EACH ROW WHEN (OLD.kind = 1 AND NEW.kind = 0) EXECUTE FUNCTION botwire_drop_items();
    CREATE TABLE botwire_quota_usage (
        ns TEXT COLLATE "C" NOT NULL,
        day BIGINT NOT NULL,
        writes BIGINT NOT NULL,
        PRIMARY KEY (ns, day)
    );
    """,
    # 2 (2026-11): a version floor for the whole database. Deleting keys raises it to their
    # highest version (one statement-level trigger per DELETE, which locks the floor's row only
    # when it rises), and a key is created with a version above it, so a key deleted and
    # created again gets a version above any it had, whatever the writers' clocks say.
    """
    CREATE TABLE botwire_version_floor (value BIGINT NOT NULL);
    INSERT INTO botwire_version_floor SELECT coalesce(max(version), 0) FROM botwire_entries;
    CREATE FUNCTION botwire_raise_version_floor() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE botwire_version_floor f SET value = g.top
        FROM (SELECT max(version) AS top FROM botwire_gone) g WHERE g.top > f.value;
        RETURN NULL;
    END $$;
    CREATE TRIGGER botwire_entries_version_floor AFTER DELETE ON botwire_entries
        REFERENCING OLD TABLE AS botwire_gone
        FOR EACH STATEMENT EXECUTE FUNCTION botwire_raise_version_floor();
    """,
    # 3 (2026-11): full-text search. Each value and each list item carries its tsvector (the
    # text botwire.backends.search folds, in the 'simple' configuration),
    # computed in the statement that writes it, and a GIN index finds them. Then the values
    # written before are indexed.
    """
    ALTER TABLE botwire_entries ADD COLUMN tsv tsvector;
    ALTER TABLE botwire_list_items ADD COLUMN tsv tsvector;
    CREATE INDEX botwire_entries_search ON botwire_entries USING GIN (tsv);
    CREATE INDEX botwire_list_items_search ON botwire_list_items USING GIN (tsv);
    """,
    # 4 (2026-11): the values written before were indexed here; since 2026-12, migration 7
    # indexes every value, in the shape the current release reads.
    lambda conn, progress: None,
    # 5 (2026-12): GIN gathers new entries in a pending list that every search reads whole
    # until it is merged; 4 MB of it made a search over 10,000 fresh values take 20 ms. A
    # 256 kB list is merged more often, at about the same cost to writes.
    """
    ALTER INDEX botwire_entries_search SET (gin_pending_list_limit = 256);
    ALTER INDEX botwire_list_items_search SET (gin_pending_list_limit = 256);
    """,
    # 6 (2026-12): a namespace's words carry its tag (botwire.backends.search.ns_tag), so that
    # a search reads, ranks by and pays for its own namespace's part of the index only. The
    # values were indexed again here; migration 7 does it now, in the shape this release reads.
    lambda conn, progress: None,
    # 7 (2026-12): the store has a language, whose stems it indexes (English); each document
    # has a digest of its words, so that values that read alike show once. Every value and
    # item is indexed again.
    lambda conn, progress: add_languages(conn, progress),
    # 8 (2026-12): the change log (see botwire.backends.postgres.changes).
    """
    CREATE SEQUENCE IF NOT EXISTS botwire_change_seq;
    CREATE TABLE IF NOT EXISTS botwire_changes (
        seq bigint PRIMARY KEY DEFAULT nextval('botwire_change_seq'),
        ns text COLLATE "C" NOT NULL,
        key text COLLATE "C",
        op text NOT NULL,
        version bigint,
        at bigint NOT NULL,
        actor text NOT NULL,
        request_id text,
        value text
    );
    CREATE INDEX IF NOT EXISTS botwire_changes_of_key ON botwire_changes (ns, key, seq);
    """,
    # 9 (2026-12): an append's window (max_len, keep_first) beside its items, so that a list's
    # value at any version can be rebuilt.
    "ALTER TABLE botwire_changes ADD COLUMN IF NOT EXISTS detail text",
]
SCHEMA_VERSION = len(MIGRATIONS)
LOCK_ID = 0x626F7477  # advisory lock that serialises migrations ("botw")


def apply_migrations(
    conn: psycopg.Connection[Any],
    schema: str | None,
    store: str,
    refuse: bool,
    progress: Progress | None = None,
) -> int:
    """Bring the schema up to date inside ``conn``'s transaction; return how many migrations ran.

    Processes that start at once take turns (an advisory lock), so the schema and every
    migration are made exactly once. ``refuse``: raise instead of migrating (``?migrate=false``).
    ``store`` names the database in messages.
    """
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_ID,))
    if schema:
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    conn.execute(
        "CREATE TABLE IF NOT EXISTS botwire_migrations"
        " (version INT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
    )
    row = conn.execute("SELECT max(version) FROM botwire_migrations").fetchone()
    current = (row[0] if row else None) or 0
    if current > SCHEMA_VERSION:
        raise BackendUnavailable(
            f"{store} has botwire schema {current}, newer than this botwire "
            f"({SCHEMA_VERSION}); upgrade botwire to use it"
        )
    if current < SCHEMA_VERSION and refuse:
        raise BackendUnavailable(
            f"{store} needs botwire's schema migrations; run "
            "`botwire migrate --url ...` (automatic migration is off)"
        )
    for number in range(current, SCHEMA_VERSION):
        step = MIGRATIONS[number]
        if isinstance(step, str):
            conn.execute(step)
        else:
            step(conn, progress)
        conn.execute("INSERT INTO botwire_migrations (version) VALUES (%s)", (number + 1,))
    return int(SCHEMA_VERSION - current)


def add_languages(conn: psycopg.Connection[Any], progress: Progress | None) -> None:
    """Migration 7: the language setting and the digests, then every value indexed again.
    (A store made between releases may hold the setting already; it keeps it.)"""
    conn.execute(
        """
        CREATE TABLE IF NOT EXISTS botwire_search_settings (language TEXT NOT NULL);
        INSERT INTO botwire_search_settings
            SELECT 'english' WHERE NOT EXISTS (SELECT FROM botwire_search_settings);
        ALTER TABLE botwire_entries ADD COLUMN IF NOT EXISTS digest TEXT;
        ALTER TABLE botwire_list_items ADD COLUMN IF NOT EXISTS digest TEXT;
        """
    )
    index_existing(conn, progress)


def settle_language(
    conn: psycopg.Connection[Any], wanted: str | None, progress: Progress | None
) -> str:
    """The store's language, after changing it to ``wanted`` (and indexing every value and
    item again in it) when it differs; inside the migrations' locked transaction."""
    (language,) = conn.execute("SELECT language FROM botwire_search_settings").fetchone() or (
        DEFAULT_LANGUAGE,
    )
    if wanted is None or wanted == language:
        return str(language)
    conn.execute("UPDATE botwire_search_settings SET language = %s", (wanted,))
    index_existing(conn, progress)
    return wanted


def index_existing(conn: psycopg.Connection[Any], progress: Progress | None) -> None:
    """The tsvector and digest of every value and item written before (migration 7, and a
    new language), in the store's language."""
    row = conn.execute("SELECT language FROM botwire_search_settings").fetchone()
    language = row[0] if row else DEFAULT_LANGUAGE
    (total,) = conn.execute(
        "SELECT (SELECT count(*) FROM botwire_entries WHERE kind = 0)"
        " + (SELECT count(*) FROM botwire_list_items)"
    ).fetchone() or (0,)
    done = 0
    for sql, update in [
        ("SELECT id, NULL, ns, key, value FROM botwire_entries WHERE kind = 0",
         "UPDATE botwire_entries SET tsv = %s::tsvector, digest = %s WHERE id = %s"),
        ("SELECT i.entry_id, i.seq, e.ns, e.key, i.value FROM botwire_list_items i"
         " JOIN botwire_entries e ON e.id = i.entry_id",
         "UPDATE botwire_list_items SET tsv = %s::tsvector, digest = %s"
         " WHERE entry_id = %s AND seq = %s"),
    ]:  # fmt: skip
        with conn.cursor(name="botwire_index") as rows:
            rows.execute(sql)
            while batch := rows.fetchmany(1000):
                params = [
                    (
                        *tsvector(ns, key, value, language).values(),
                        entry_id,
                        *(() if seq is None else (seq,)),
                    )
                    for entry_id, seq, ns, key, value in batch
                ]
                with conn.cursor() as cur:
                    cur.executemany(update, params)
                done += len(batch)
                if progress is not None:
                    progress(done, total)
