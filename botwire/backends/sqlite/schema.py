"""The embedded store's schema: its migrations, and how a file is brought up to date."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

from botwire.errors import BackendUnavailable


def _queue_everything(queue: str) -> str:
    """Every document of the store, noted in ``queue`` for the index to catch up with (when
    search is on)."""
    return f"""
    INSERT INTO {queue} SELECT id, -1 FROM entries
        WHERE (SELECT enabled FROM search_state) AND kind = 0 AND instr(ns, '/') = 0;
    INSERT INTO {queue}
        SELECT i.entry_id, i.seq FROM list_items i JOIN entries e ON e.id = i.entry_id
        WHERE (SELECT enabled FROM search_state) AND instr(e.ns, '/') = 0;
    """


QUEUE_EVERYTHING = _queue_everything("search_queue") + (
    "UPDATE search_state SET logged_upto = (SELECT coalesce(max(seq), 0) FROM change_log);"
)
"""Every document of the store noted for the index (when search is on), the log's changes
included (see migration 12)."""

MIGRATIONS: list[str] = [
    # 1: the first schema.
    """
    CREATE TABLE entries (
        id INTEGER PRIMARY KEY,
        ns TEXT NOT NULL,
        key TEXT NOT NULL,
        kind INTEGER NOT NULL,      -- 0: JSON text in value; 1: a list, items in list_items
        value TEXT,
        size INTEGER NOT NULL,      -- bytes of the value's JSON text
        version INTEGER NOT NULL,
        created_at INTEGER NOT NULL,  -- microseconds since the epoch
        updated_at INTEGER NOT NULL,
        expires_at INTEGER,
        ttl REAL,                   -- seconds the key was written with, for refresh_ttl
        list_lo INTEGER,            -- lists: items have lo <= seq < hi
        list_hi INTEGER,
        UNIQUE (ns, key)
    );
    CREATE INDEX entries_expiry ON entries (expires_at) WHERE expires_at IS NOT NULL;
    CREATE TABLE list_items (
        entry_id INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (entry_id, seq)
    ) WITHOUT ROWID;
    CREATE TRIGGER entries_delete_items AFTER DELETE ON entries WHEN old.kind = 1
    BEGIN DELETE FROM list_items WHERE entry_id = old.id; END;
    CREATE TRIGGER entries_replace_items AFTER UPDATE OF kind ON entries
    WHEN old.kind = 1 AND new.kind = 0
    BEGIN DELETE FROM list_items WHERE entry_id = old.id; END;
    CREATE TABLE quota_usage (
        ns TEXT NOT NULL,
        day INTEGER NOT NULL,
        writes INTEGER NOT NULL,
        PRIMARY KEY (ns, day)
    ) WITHOUT ROWID;
    """,
    # 2 (2026-11): a version floor for the whole store. Deleting a key (or purging it) raises
    # the floor to its version, and a key is created with a version above the floor, so a key
    # deleted and created again gets a version above any it had, whatever the clocks of the
    # processes that wrote it say.
    """
    CREATE TABLE version_floor (value INTEGER NOT NULL);
    INSERT INTO version_floor SELECT coalesce(max(version), 0) FROM entries;
    CREATE TRIGGER entries_version_floor AFTER DELETE ON entries
    BEGIN UPDATE version_floor SET value = old.version WHERE value < old.version; END;
    """,
    # 3 (2026-11): full-text search. FTS5 holds one document per value and per list item. A
    # transaction that writes one FTS5 row costs about four times a plain upsert (FTS5 writes a
    # segment per commit), while rows added in batches cost little, so writes only note the
    # documents they change in search_pending (triggers, so that every write path does), in
    # their own transaction, and the index catches up in batches: before every search, in the
    # search's transaction (never stale), and now and then during writes. Existing values are
    # queued here and indexed the same way.
    """
    CREATE VIRTUAL TABLE search_fts USING fts5(doc, tokenize = 'unicode61');
    CREATE TABLE search_docs (      -- list items' documents: rowid -id in search_fts
        id INTEGER PRIMARY KEY,     -- (a value's document has its entry's id as rowid)
        entry_id INTEGER NOT NULL,
        seq INTEGER NOT NULL
    );
    CREATE UNIQUE INDEX search_docs_of ON search_docs (entry_id, seq);
    CREATE TABLE search_pending (   -- a queue, in rowid order; a document may be noted twice
        entry_id INTEGER NOT NULL,
        seq INTEGER NOT NULL        -- -1: the value; -2: the entry is gone; else an item
    );
    CREATE TABLE search_state (enabled INTEGER NOT NULL);
    INSERT INTO search_state VALUES (1);
    CREATE TRIGGER search_entry_new AFTER INSERT ON entries
    WHEN instr(new.ns, '/') = 0 AND (SELECT enabled FROM search_state)
    BEGIN INSERT INTO search_pending VALUES (new.id, -1); END;
    CREATE TRIGGER search_entry_changed AFTER UPDATE OF value, kind ON entries
    WHEN instr(new.ns, '/') = 0 AND (SELECT enabled FROM search_state)
    BEGIN INSERT INTO search_pending VALUES (new.id, -1); END;
    CREATE TRIGGER search_entry_gone AFTER DELETE ON entries
    WHEN instr(old.ns, '/') = 0 AND (SELECT enabled FROM search_state)
    BEGIN INSERT INTO search_pending VALUES (old.id, -2); END;
    CREATE TRIGGER search_item_new AFTER INSERT ON list_items
    WHEN (SELECT enabled FROM search_state)
    BEGIN INSERT INTO search_pending VALUES (new.entry_id, new.seq); END;
    CREATE TRIGGER search_item_gone AFTER DELETE ON list_items
    WHEN (SELECT enabled FROM search_state)
        AND EXISTS (SELECT 1 FROM entries WHERE id = old.entry_id)
    BEGIN INSERT INTO search_pending VALUES (old.entry_id, old.seq); END;
    CREATE TRIGGER search_item_moved AFTER UPDATE OF seq ON list_items
    WHEN (SELECT enabled FROM search_state)
    BEGIN INSERT INTO search_pending VALUES (old.entry_id, old.seq);
          INSERT INTO search_pending VALUES (new.entry_id, new.seq); END;
    """
    + _queue_everything("search_pending"),
    # 4 (2026-12): a namespace's words carry its tag, so that a search reads, ranks by and
    # pays for its own namespace's part of the index only; each document's length is kept
    # for the ranking, and each list item's size, so that a read is measured before it is
    # made; the store has a language, whose stems it indexes (English); each document has a
    # digest of its words, so that values that read alike show once. The index is built
    # again.
    """
    DROP TABLE search_fts;
    CREATE VIRTUAL TABLE search_fts USING fts5(
        doc, length UNINDEXED, digest UNINDEXED, tokenize = 'ascii'
    );
    DELETE FROM search_docs;
    DELETE FROM search_pending;
    ALTER TABLE list_items ADD COLUMN size INTEGER;
    UPDATE list_items SET size = length(CAST(value AS BLOB));
    ALTER TABLE search_state ADD COLUMN language TEXT NOT NULL DEFAULT 'english';
    """
    + _queue_everything("search_pending"),
    # 5 (2026-12): the change log (see botwire.backends.changes). A position is the row id,
    # given in the write transaction; the write lock orders commits, so positions grow in
    # commit order, and trims always keep the newest row, so a position is never given twice.
    # An append's window (max_len, keep_first) is kept with it, so that a list's value at any
    # version can be rebuilt.
    """
    CREATE TABLE changes (
        seq INTEGER PRIMARY KEY,
        ns TEXT NOT NULL,
        key TEXT,                   -- NULL: a clear of the namespace
        op TEXT NOT NULL,
        version INTEGER,
        at INTEGER NOT NULL,        -- microseconds since the epoch
        actor TEXT NOT NULL,
        request_id TEXT,
        value TEXT,
        detail TEXT
    );
    CREATE INDEX changes_of_key ON changes (ns, key);
    """,
    # 6 (2026-12): a write notes a value's document only when it has one, or had one: a list
    # (whose items are documents of their own) saved again notes nothing more.
    """
    DROP TRIGGER search_entry_new;
    CREATE TRIGGER search_entry_new AFTER INSERT ON entries
    WHEN new.kind = 0 AND instr(new.ns, '/') = 0 AND (SELECT enabled FROM search_state)
    BEGIN INSERT INTO search_pending VALUES (new.id, -1); END;
    DROP TRIGGER search_entry_changed;
    CREATE TRIGGER search_entry_changed AFTER UPDATE OF value, kind ON entries
    WHEN (old.kind = 0 OR new.kind = 0) AND old.value IS NOT new.value
        AND instr(new.ns, '/') = 0 AND (SELECT enabled FROM search_state)
    BEGIN INSERT INTO search_pending VALUES (new.id, -1); END;
    """,
    # 7 (2026-12): each document holds a word for its length, so that a search that matches
    # many documents ranks the shortest first, and the index's vocabulary (search_vocab)
    # counts a namespace's documents of each length for the ranking's average; two letters
    # typed of a word (after the namespace's tag of ten) have an index of their own, so that
    # such a prefix does not read the documents of every word it begins. The index is built
    # again.
    """
    DROP TABLE search_fts;
    CREATE VIRTUAL TABLE search_fts USING fts5(
        doc, length UNINDEXED, digest UNINDEXED, tokenize = 'ascii', prefix = '12'
    );
    CREATE VIRTUAL TABLE search_vocab USING fts5vocab(search_fts, row);
    DELETE FROM search_docs;
    DELETE FROM search_pending;
    """
    + _queue_everything("search_pending"),
    # 8 (2026-12): a key's changes are a chain, newest first: its entry names its newest change
    # (last_change), each change the key's change before it (prev), and a key that is gone
    # (deleted, cleared, purged) leaves its newest change in removed_heads until it is written
    # again (or that change is trimmed). A write then adds its change at the end of the log
    # only, instead of also into an index of the log by key, which cost each logged write a
    # page of its own (a third of the log's cost). The clears of a namespace, few, keep an
    # index.
    """
    ALTER TABLE entries ADD COLUMN last_change INTEGER;
    ALTER TABLE changes ADD COLUMN prev INTEGER;
    CREATE TABLE removed_heads (
        ns TEXT NOT NULL,
        key TEXT NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (ns, key)
    ) WITHOUT ROWID;
    CREATE INDEX removed_heads_by_seq ON removed_heads (seq);
    UPDATE changes SET prev = (SELECT max(c.seq) FROM changes c
        WHERE c.ns = changes.ns AND c.key = changes.key AND c.seq < changes.seq)
    WHERE key IS NOT NULL;
    UPDATE entries SET last_change = (SELECT max(c.seq) FROM changes c
        WHERE c.ns = entries.ns AND c.key = entries.key);
    INSERT INTO removed_heads
        SELECT ns, key, max(seq) FROM changes c WHERE key IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM entries e WHERE e.ns = c.ns AND e.key = c.key)
        GROUP BY ns, key;
    DROP INDEX changes_of_key;
    CREATE INDEX changes_clears ON changes (ns, seq) WHERE key IS NULL;
    CREATE TRIGGER changes_head AFTER INSERT ON changes WHEN new.key IS NOT NULL
    BEGIN
        UPDATE entries SET last_change = new.seq WHERE ns = new.ns AND key = new.key;
        INSERT OR REPLACE INTO removed_heads SELECT new.ns, new.key, new.seq
        WHERE NOT EXISTS (SELECT 1 FROM entries WHERE ns = new.ns AND key = new.key);
    END;
    CREATE TRIGGER entries_removed AFTER DELETE ON entries WHEN old.last_change IS NOT NULL
    BEGIN
        INSERT OR REPLACE INTO removed_heads VALUES (old.ns, old.key, old.last_change);
    END;
    CREATE TRIGGER entries_back AFTER INSERT ON entries
    WHEN EXISTS (SELECT 1 FROM removed_heads WHERE ns = new.ns AND key = new.key)
    BEGIN
        UPDATE entries SET last_change =
            (SELECT seq FROM removed_heads WHERE ns = new.ns AND key = new.key)
        WHERE id = new.id;
        DELETE FROM removed_heads WHERE ns = new.ns AND key = new.key;
    END;
    """,
    # 9 (2026-12): vectors for recall by meaning, one per value and per list item that has text,
    # written with it by a memory that has an embedder; model is the embedder's fingerprint. A
    # vector goes when its value changes or goes (triggers, so every write path does), and moves
    # with its item.
    """
    CREATE TABLE vectors (
        entry_id INTEGER NOT NULL,
        seq INTEGER NOT NULL,       -- -1: the value; else a list item's
        model TEXT NOT NULL,
        vector BLOB NOT NULL,       -- unit-length float32
        PRIMARY KEY (entry_id, seq)
    ) WITHOUT ROWID;
    CREATE TRIGGER vectors_entry_gone AFTER DELETE ON entries
    BEGIN DELETE FROM vectors WHERE entry_id = old.id; END;
    CREATE TRIGGER vectors_value_changed AFTER UPDATE OF value, kind ON entries
    BEGIN DELETE FROM vectors WHERE entry_id = new.id AND seq = -1; END;
    CREATE TRIGGER vectors_item_gone AFTER DELETE ON list_items
    BEGIN DELETE FROM vectors WHERE entry_id = old.entry_id AND seq = old.seq; END;
    CREATE TRIGGER vectors_item_moved AFTER UPDATE OF seq ON list_items
    BEGIN UPDATE vectors SET seq = new.seq WHERE entry_id = old.entry_id AND seq = old.seq; END;
    """,
    # 10 (2026-12): a record of every vector written or gone, so that a process's copy of a
    # namespace's vectors catches up with what changed since it read them (stamps only grow:
    # the trim keeps the newest).
    """
    CREATE TABLE vector_changes (
        stamp INTEGER PRIMARY KEY,
        entry_id INTEGER NOT NULL,
        seq INTEGER NOT NULL
    );
    CREATE TRIGGER vectors_added AFTER INSERT ON vectors
    BEGIN INSERT INTO vector_changes (entry_id, seq) VALUES (new.entry_id, new.seq); END;
    CREATE TRIGGER vectors_removed AFTER DELETE ON vectors
    BEGIN INSERT INTO vector_changes (entry_id, seq) VALUES (old.entry_id, old.seq); END;
    CREATE TRIGGER vectors_changed AFTER UPDATE ON vectors
    BEGIN
        INSERT INTO vector_changes (entry_id, seq)
        VALUES (old.entry_id, old.seq), (new.entry_id, new.seq);
    END;
    """,
    # 11 (2026-12): a set, an append and an incr name their change in the statement that
    # writes their key's row, instead of a trigger on the log writing the row a second time
    # (a third of what the log cost a set): the row's last_change takes the position the
    # change is about to get and prev_change keeps the one before, which the change takes as
    # its prev; other writes point the key's row (or removed_heads) at their change with a
    # statement of their own. A process of an earlier release, still running when another
    # upgrades the file, relied on that trigger: its changes would go missing from histories,
    # so the log is renamed, and its old name is a view that reads as before and refuses
    # writes with a clear error. A key written again after it was gone takes up its chain
    # where removed_heads kept it.
    """
    ALTER TABLE entries ADD COLUMN prev_change INTEGER;
    DROP TRIGGER changes_head;
    ALTER TABLE changes RENAME TO change_log;
    CREATE VIEW changes AS SELECT * FROM change_log;
    CREATE TRIGGER changes_added INSTEAD OF INSERT ON changes
    BEGIN SELECT RAISE(ABORT, 'this store was upgraded by a newer botwire: upgrade botwire'); END;
    CREATE TRIGGER changes_changed INSTEAD OF UPDATE ON changes
    BEGIN SELECT RAISE(ABORT, 'this store was upgraded by a newer botwire: upgrade botwire'); END;
    CREATE TRIGGER changes_deleted INSTEAD OF DELETE ON changes
    BEGIN SELECT RAISE(ABORT, 'this store was upgraded by a newer botwire: upgrade botwire'); END;
    DROP TRIGGER entries_back;
    CREATE TRIGGER entries_back AFTER INSERT ON entries
    WHEN EXISTS (SELECT 1 FROM removed_heads WHERE ns = new.ns AND key = new.key)
    BEGIN
        UPDATE entries SET
            prev_change = (SELECT seq FROM removed_heads WHERE ns = new.ns AND key = new.key),
            last_change = coalesce(last_change,
                (SELECT seq FROM removed_heads WHERE ns = new.ns AND key = new.key))
        WHERE id = new.id;
        DELETE FROM removed_heads WHERE ns = new.ns AND key = new.key;
    END;
    """,
    # 12 (2026-12): a logged write of a value (a set, an incr) notes its document through its
    # change in the log rather than in the queue: the index catches up with the log's changes
    # after search_state.logged_upto as with the queue's notes. The queue's page was a third
    # of what a logged set wrote, and as much as the log cost it. Trims keep the changes the
    # index has not caught up with. A process of an earlier release, still running when
    # another upgrades the file, would search without catching up with the log: the queue is
    # renamed, and its old name is a view that fails to read with a clear error (at such a
    # process's next search or catch-up, rather than results that miss the log's writes).
    """
    ALTER TABLE search_state ADD COLUMN logged_upto INTEGER NOT NULL DEFAULT 0;
    UPDATE search_state SET logged_upto = (SELECT coalesce(max(seq), 0) FROM change_log);
    ALTER TABLE search_pending RENAME TO search_queue;
    CREATE VIEW search_pending (rowid, entry_id, seq) AS SELECT json_extract('{}',
        'this store was upgraded by a newer botwire: upgrade botwire'), 0, 0;
    DROP TRIGGER search_entry_new;
    CREATE TRIGGER search_entry_new AFTER INSERT ON entries
    WHEN new.kind = 0 AND new.last_change IS NULL AND instr(new.ns, '/') = 0
        AND (SELECT enabled FROM search_state)
    BEGIN INSERT INTO search_queue VALUES (new.id, -1); END;
    DROP TRIGGER search_entry_changed;
    CREATE TRIGGER search_entry_changed AFTER UPDATE OF value, kind ON entries
    WHEN (old.kind = 0 OR new.kind = 0) AND old.value IS NOT new.value
        AND (new.kind != 0 OR new.last_change IS old.last_change)
        AND instr(new.ns, '/') = 0 AND (SELECT enabled FROM search_state)
    BEGIN INSERT INTO search_queue VALUES (new.id, -1); END;
    """,
    # 13 (2026-12): values and list items written with searchable=False stay out of the search
    # index (and have no vector): the index's catch-up passes them by (a value's old document
    # goes, also when the same value is written again out of the index), and an item kept out
    # is not noted at all (an item never changes).
    """
    ALTER TABLE entries ADD COLUMN unsearched INTEGER;
    ALTER TABLE list_items ADD COLUMN unsearched INTEGER;
    DROP TRIGGER search_item_new;
    CREATE TRIGGER search_item_new AFTER INSERT ON list_items
    WHEN new.unsearched IS NULL AND (SELECT enabled FROM search_state)
    BEGIN INSERT INTO search_queue VALUES (new.entry_id, new.seq); END;
    DROP TRIGGER search_entry_changed;
    CREATE TRIGGER search_entry_changed AFTER UPDATE OF value, kind, unsearched ON entries
    WHEN (old.kind = 0 OR new.kind = 0)
        AND (old.value IS NOT new.value OR old.unsearched IS NOT new.unsearched)
        AND (new.kind != 0 OR new.last_change IS old.last_change)
        AND instr(new.ns, '/') = 0 AND (SELECT enabled FROM search_state)
    BEGIN INSERT INTO search_queue VALUES (new.id, -1); END;
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)


def statements(script: str) -> Iterator[str]:
    """The statements of a SQL script, one at a time (a trigger's body holds semicolons)."""
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            yield statement
            statement = ""
    if statement.strip():
        yield statement


def migrate(conn: sqlite3.Connection, path: str) -> None:
    """Bring the file's schema up to date, in a write transaction (another process may be
    doing the same: the second finds nothing left to do)."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version == SCHEMA_VERSION:
        return
    if version > SCHEMA_VERSION:
        raise BackendUnavailable(
            f"{path!r} has schema version {version}, newer than this botwire "
            f"({SCHEMA_VERSION}); upgrade botwire to use it"
        )
    conn.execute("BEGIN IMMEDIATE")
    try:
        (version,) = conn.execute("PRAGMA user_version").fetchone()  # another process may
        for number in range(version, SCHEMA_VERSION):  # have migrated it
            for statement in statements(MIGRATIONS[number]):
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def configure_search(conn: sqlite3.Connection, enabled: bool | None, language: str | None) -> None:
    """Turn the full-text index on (every document queued again) or off (emptied), or index in
    another language (every document queued again), for every process of the store; ``None``
    leaves a setting as it is."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        current, stored = conn.execute("SELECT enabled, language FROM search_state").fetchone()
        if language is not None and language != stored:
            conn.execute("UPDATE search_state SET language = ?", (language,))
            if current and enabled is not False:  # the index is built again, from what is
                conn.execute("DELETE FROM search_fts")  # (deletions noted in the queue too)
                conn.execute("DELETE FROM search_docs")
                conn.execute("DELETE FROM search_queue")
                for statement in statements(QUEUE_EVERYTHING):
                    conn.execute(statement)
        if enabled is not None and bool(current) != enabled:
            conn.execute("UPDATE search_state SET enabled = ?", (int(enabled),))
            if enabled:  # every document is indexed again
                for statement in statements(QUEUE_EVERYTHING):
                    conn.execute(statement)
            else:
                conn.execute("DELETE FROM search_fts")
                conn.execute("DELETE FROM search_docs")
                conn.execute("DELETE FROM search_queue")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
