"""The PostgreSQL store's schema: its migrations, applied once under an advisory lock."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg

from botwire.backends.search import DEFAULT_LANGUAGE, tsvector
from botwire.errors import BackendUnavailable

Migration = str | Callable[[psycopg.Connection[Any], "Progress | None"], None]
Progress = Callable[[int, int], None]
APPEND = r"""
CREATE OR REPLACE FUNCTION botwire_append(
    p_ns text, p_key text, p_values text[], p_docs text[], p_digests text[],
    p_max_len bigint, p_keep_first text, p_ttl float8, p_expires_at bigint, p_now bigint
) RETURNS bigint LANGUAGE plpgsql AS $$
-- botwire.backends.common.append_steps as one server-side call: lock (or start) the key's
-- list, add the items, keep the window, save the list; the new length. NULL, having changed
-- nothing but an expired key's reset, where the key holds a value written by set (its
-- items are split in Python, to keep their exact text) or the window's test meets text that
-- jsonb cannot hold (NUL): the caller then runs append_steps in the same transaction.
DECLARE
    r record;
    lo bigint;
    hi bigint;
    items bigint;
    first text;
    keep boolean := false;
    removed bigint := 0;
    removed_bytes bigint := 0;
BEGIN
    LOOP  -- as PostgresBackend._lock_row
        INSERT INTO botwire_entries AS e (ns, key, kind, value, size, version, created_at,
            updated_at, list_lo, list_hi)
        VALUES (p_ns, p_key, 1, NULL, 2,
            greatest(p_now, (SELECT value + 1 FROM botwire_version_floor)), p_now, p_now, 0, 0)
        ON CONFLICT (ns, key) DO NOTHING
        RETURNING e.id, e.kind, e.size, e.list_lo, e.list_hi, e.expires_at INTO r;
        EXIT WHEN FOUND;
        SELECT e.id, e.kind, e.size, e.list_lo, e.list_hi, e.expires_at INTO r
            FROM botwire_entries e WHERE e.ns = p_ns AND e.key = p_key FOR UPDATE;
        IF FOUND THEN
            IF r.expires_at IS NOT NULL AND r.expires_at <= p_now THEN  -- start afresh
                IF r.kind = 1 THEN
                    DELETE FROM botwire_list_items WHERE entry_id = r.id;
                END IF;
                UPDATE botwire_entries SET kind = 1, value = NULL, size = 2,
                    version = greatest(version + 1, p_now), created_at = p_now,
                    updated_at = p_now, expires_at = NULL, ttl = NULL, list_lo = 0,
                    list_hi = 0, tsv = NULL, digest = NULL
                WHERE id = r.id;
                r.kind := 1; r.size := 2; r.list_lo := 0; r.list_hi := 0;
            ELSIF r.kind = 0 THEN
                RETURN NULL;
            END IF;
            EXIT;
        END IF;
    END LOOP;
    lo := coalesce(r.list_lo, 0);
    hi := coalesce(r.list_hi, 0);
    IF p_max_len IS NOT NULL AND p_keep_first IS NOT NULL
            AND hi - lo + cardinality(p_values) > p_max_len THEN
        IF hi > lo THEN
            SELECT value INTO first FROM botwire_list_items WHERE entry_id = r.id AND seq = lo;
        ELSE
            first := p_values[1];
        END IF;
        IF strpos(first, E'\\u0000') > 0 OR strpos(p_keep_first, E'\\u0000') > 0 THEN
            RETURN NULL;
        END IF;
        -- common.fields_match: an object holding each field with an equal JSON value
        keep := jsonb_typeof(first::jsonb) = 'object' AND NOT EXISTS (
            SELECT FROM jsonb_each(p_keep_first::jsonb) f
            WHERE first::jsonb -> f.key IS DISTINCT FROM f.value);
    END IF;
    INSERT INTO botwire_list_items (entry_id, seq, value, tsv, digest)
        SELECT r.id, hi + t.n - 1, t.value, t.doc::tsvector, t.digest
        FROM unnest(p_values, p_docs, p_digests) WITH ORDINALITY AS t(value, doc, digest, n);
    -- common.list_size: n items' text is 2 + their sizes + (n - 1) commas
    items := CASE WHEN hi > lo THEN r.size - (hi - lo) - 1 ELSE 0 END
        + (SELECT coalesce(sum(octet_length(v)), 0) FROM unnest(p_values) v);
    hi := hi + cardinality(p_values);
    IF p_max_len IS NOT NULL AND hi - lo > p_max_len THEN
        WITH gone AS (
            DELETE FROM botwire_list_items
            WHERE entry_id = r.id AND seq >= lo + keep::int AND seq < hi - p_max_len + keep::int
            RETURNING octet_length(value) AS bytes)
        SELECT count(*), coalesce(sum(bytes), 0) INTO removed, removed_bytes FROM gone;
        IF keep THEN  -- the first item moves up to just before the newest max_len - 1
            UPDATE botwire_list_items SET seq = hi - p_max_len WHERE entry_id = r.id AND seq = lo;
        END IF;
        lo := hi - p_max_len;
        items := items - removed_bytes;
    END IF;
    UPDATE botwire_entries SET kind = 1, value = NULL, tsv = NULL, digest = NULL,
        size = CASE WHEN hi > lo THEN items + (hi - lo) + 1 ELSE 2 END,
        list_lo = lo, list_hi = hi, version = greatest(version + 1, p_now), updated_at = p_now,
        expires_at = CASE WHEN p_ttl IS NULL THEN expires_at ELSE p_expires_at END,
        ttl = coalesce(p_ttl, ttl)
    WHERE id = r.id;
    RETURN hi - lo;
END $$;
"""
"""``append`` as one server-side function (migration 10): an append costs the round trips of
a ``set``, not one per step of :func:`~botwire.backends.common.append_steps`."""

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
    # 10 (2026-12): append in one round trip (see APPEND).
    APPEND,
    # 11 (2026-12): each document holds a word for its length (as on SQLite), so that a
    # search that matches many documents ranks the shortest first. Every value and item is
    # indexed again.
    lambda conn, progress: index_existing(conn, progress),
    # 12 (2026-12): vectors for recall by meaning, on the rows they belong to (a value's, a list
    # item's), written with them by a memory that has an embedder; vector_model is the
    # embedder's fingerprint. A value that changes loses its vector (a trigger, so that every
    # write path does); an item's goes with it.
    """
    ALTER TABLE botwire_entries ADD COLUMN IF NOT EXISTS vector bytea,
        ADD COLUMN IF NOT EXISTS vector_model text;
    ALTER TABLE botwire_list_items ADD COLUMN IF NOT EXISTS vector bytea,
        ADD COLUMN IF NOT EXISTS vector_model text;
    CREATE OR REPLACE FUNCTION botwire_vector_stale() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        NEW.vector := NULL;
        NEW.vector_model := NULL;
        RETURN NEW;
    END $$;
    CREATE TRIGGER botwire_entries_vector_stale BEFORE UPDATE OF value, kind ON botwire_entries
        FOR EACH ROW WHEN (OLD.vector IS NOT NULL
            AND (NEW.value IS DISTINCT FROM OLD.value OR NEW.kind <> OLD.kind))
        EXECUTE FUNCTION botwire_vector_stale();
    """,
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
    index_existing(conn, progress, again=True)
    return wanted


def index_existing(
    conn: psycopg.Connection[Any], progress: Progress | None, again: bool = False
) -> None:
    """The tsvector and digest of every value and item written before (migrations 7 and 11),
    in the store's language; ``again`` (a new language): of every value and item indexed
    (those written with ``searchable=False`` have no tsvector, and stay out)."""
    row = conn.execute("SELECT language FROM botwire_search_settings").fetchone()
    language = row[0] if row else DEFAULT_LANGUAGE
    indexed = " AND tsv IS NOT NULL" if again else ""
    item_indexed = indexed.replace("tsv", "i.tsv")
    (total,) = conn.execute(
        f"SELECT (SELECT count(*) FROM botwire_entries WHERE kind = 0{indexed})"
        f" + (SELECT count(*) FROM botwire_list_items i WHERE true{item_indexed})"
    ).fetchone() or (0,)
    done = 0
    for sql, update in [
        (f"SELECT id, NULL, ns, key, value FROM botwire_entries WHERE kind = 0{indexed}",
         "UPDATE botwire_entries SET tsv = %s::tsvector, digest = %s WHERE id = %s"),
        ("SELECT i.entry_id, i.seq, e.ns, e.key, i.value FROM botwire_list_items i"
         f" JOIN botwire_entries e ON e.id = i.entry_id WHERE true{item_indexed}",
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
