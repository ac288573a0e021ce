"""The baseline for bench_server.py: a server built the way the original hosted BotWire was.

FastAPI + SQLite, one worker: plain `def` routes (run in FastAPI's thread pool), a SQLite
connection opened per request with SQLite's default settings, pydantic models in and out.
It serves the same compatible routes, so one client measures both servers alike.

    BASELINE_DB=/tmp/baseline.db uvicorn baseline_server:app --port 8766
"""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import datetime, timezone
from typing import Any

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

DB = os.environ.get("BASELINE_DB", "baseline.db")
app = FastAPI(title="baseline")


def connect() -> sqlite3.Connection:
    conn = sqlite3.connect(DB)
    conn.execute(
        "CREATE TABLE IF NOT EXISTS memory (namespace TEXT, key TEXT, value TEXT,"
        " created_at TEXT, updated_at TEXT, expires_at TEXT, PRIMARY KEY (namespace, key))"
    )
    return conn


class MemoryIn(BaseModel):
    value: Any
    ttl: int | None = None


class MemoryOut(BaseModel):
    namespace: str
    key: str
    value: Any
    created_at: str
    updated_at: str
    expires_at: str | None = None


@app.put("/memory/{namespace}/{key}")
def put(namespace: str, key: str, body: MemoryIn) -> dict[str, Any]:
    now = datetime.now(timezone.utc).isoformat()
    value = body.value if isinstance(body.value, str) else json.dumps(body.value)
    conn = connect()
    try:
        conn.execute(
            "INSERT INTO memory VALUES (?, ?, ?, ?, ?, NULL) ON CONFLICT (namespace, key)"
            " DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            (namespace, key, value, now, now),
        )
        conn.commit()
    finally:
        conn.close()
    return {"ok": True, "namespace": namespace, "key": key}


@app.get("/memory/{namespace}/{key}", response_model=MemoryOut)
def get(namespace: str, key: str) -> MemoryOut:
    conn = connect()
    try:
        row = conn.execute(
            "SELECT value, created_at, updated_at, expires_at FROM memory"
            " WHERE namespace = ? AND key = ?",
            (namespace, key),
        ).fetchone()
    finally:
        conn.close()
    if row is None:
        raise HTTPException(404, "not found")
    return MemoryOut(
        namespace=namespace, key=key, value=row[0], created_at=row[1], updated_at=row[2],
        expires_at=row[3],
    )  # fmt: skip
