"""A process's copy of a namespace's vectors, for recall by meaning at scale: one matrix per
namespace and model, kept up to date from what changed since it was read (each engine says
what that is), so that a search scores every document of the namespace in one product
instead of reading each vector from the store. Needs numpy (the ``meaning`` extra); without
it, searches read the vectors from the store, as they do for a scope of several namespaces.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable

from botwire.backends.search.meaning import Similar

MATRIX_BYTES = 512 * 1024 * 1024
"""How many bytes of vectors a process keeps at most (its least recently searched namespaces
go first)."""


class Matrix:
    """The vectors of one namespace made by one model: a row per document (a value, or a list
    item), reused once its document goes."""

    def __init__(self, dims: int) -> None:
        import numpy as np

        self.dims = dims
        self.vectors = np.zeros((64, dims), dtype=np.float32)
        self.entry_ids = np.zeros(64, dtype=np.int64)
        self.seqs = np.zeros(64, dtype=np.int64)
        self.alive = np.zeros(64, dtype=bool)
        self.keys: list[str] = [""] * 64
        self.rows: dict[tuple[int, int], int] = {}
        self.free: list[int] = []
        self.used = 0
        self.stamp = 0
        """Where in the engine's record of vector changes this copy is up to."""

    @classmethod
    def of(cls, rows: list[tuple[int, int, str, bytes]]) -> Matrix | None:
        """A matrix of ``rows`` (entry id, seq, key, vector); ``None`` without any."""
        import numpy as np

        if not rows:
            return None
        matrix = cls(len(rows[0][3]) // 4)
        count = len(rows)
        matrix.vectors = np.frombuffer(b"".join(row[3] for row in rows), dtype=np.float32)
        matrix.vectors = matrix.vectors.reshape(count, -1).copy()
        matrix.entry_ids = np.array([row[0] for row in rows], dtype=np.int64)
        matrix.seqs = np.array([row[1] for row in rows], dtype=np.int64)
        matrix.alive = np.ones(count, dtype=bool)
        matrix.keys = [row[2] for row in rows]
        matrix.rows = {(row[0], row[1]): n for n, row in enumerate(rows)}
        matrix.used = count
        return matrix

    @property
    def nbytes(self) -> int:
        return int(self.vectors.nbytes)

    def __len__(self) -> int:
        return len(self.rows)

    def put(self, entry_id: int, seq: int, key: str, vector: bytes) -> None:
        """Hold the vector of the document ``(entry_id, seq)`` of ``key`` (one it held goes)."""
        import numpy as np

        row = self.rows.get((entry_id, seq))
        if row is None:
            if self.free:
                row = self.free.pop()
            else:
                if self.used == len(self.alive):
                    self._grow()
                row, self.used = self.used, self.used + 1
            self.rows[(entry_id, seq)] = row
        self.vectors[row] = np.frombuffer(vector, dtype=np.float32)
        self.entry_ids[row], self.seqs[row], self.keys[row] = entry_id, seq, key
        self.alive[row] = True

    def drop(self, entry_id: int, seq: int) -> None:
        """Forget the document ``(entry_id, seq)``, if held."""
        row = self.rows.pop((entry_id, seq), None)
        if row is not None:
            self.alive[row] = False
            self.free.append(row)

    def similar(self, query: bytes, prefix: str | None = None) -> Similar:
        """How similar each document held (of a key that starts with ``prefix``) is to
        ``query``."""
        import numpy as np

        used, vector = self.used, np.frombuffer(query, dtype=np.float32)
        if not prefix and not self.free:  # every row holds a document
            return Similar(self.entry_ids[:used], self.seqs[:used], self.vectors[:used] @ vector)
        alive = self.alive[:used]
        if prefix:
            starts = [key.startswith(prefix) for key in self.keys[:used]]
            alive = alive & np.array(starts, dtype=bool)
        rows = np.flatnonzero(alive)
        scores = self.vectors[:used] @ vector
        return Similar(self.entry_ids[rows], self.seqs[rows], scores[rows])

    def _grow(self) -> None:
        import numpy as np

        size = len(self.alive) * 2
        vectors = np.zeros((size, self.dims), dtype=np.float32)
        vectors[: self.used] = self.vectors[: self.used]
        self.vectors = vectors
        self.entry_ids = np.resize(self.entry_ids, size)
        self.seqs = np.resize(self.seqs, size)
        alive = np.zeros(size, dtype=bool)
        alive[: self.used] = self.alive[: self.used]
        self.alive = alive
        self.keys.extend([""] * (size - len(self.keys)))


class Matrices:
    """A process's matrices of one store, by namespace and model, the least recently searched
    dropped past :data:`MATRIX_BYTES`. Hold :attr:`lock` while using one."""

    def __init__(self, budget: int = MATRIX_BYTES) -> None:
        self.lock = threading.Lock()
        self.budget = budget
        self._held: OrderedDict[tuple[str, str], Matrix] = OrderedDict()

    def get(self, ns: str, model: str) -> Matrix | None:
        found = self._held.get((ns, model))
        if found is not None:
            self._held.move_to_end((ns, model))
        return found

    def load(
        self, ns: str, model: str, stamp: int, rows: Iterable[tuple[int, int, str, bytes]]
    ) -> Matrix | None:
        """A matrix of ``rows`` (entry id, seq, key, vector), up to ``stamp``, held for the next
        searches; ``None`` for a namespace without vectors."""
        self._held.pop((ns, model), None)
        matrix = Matrix.of(list(rows))
        if matrix is None:
            return None
        matrix.stamp = stamp
        self._held[(ns, model)] = matrix
        self.fit()
        return matrix

    def fit(self) -> None:
        """Drop the least recently searched copies past the budget (the newest stays)."""
        while sum(m.nbytes for m in self._held.values()) > self.budget and len(self._held) > 1:
            self._held.popitem(last=False)

    def drop(self, ns: str, model: str) -> None:
        self._held.pop((ns, model), None)


def numpy_present() -> bool:
    """Whether numpy imports (matrices need it)."""
    try:
        import numpy  # noqa: F401
    except ImportError:
        return False
    return True
