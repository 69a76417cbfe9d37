"""Per-community 1:N gallery: a contiguous float32 matrix searched with one matmul.

Several embeddings per person are allowed (enrollment photo, later re-enrollments);
a person's score is their best row. The open-set decision needs the best *other*
person's score, so a person's own second photo never counts as competition.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

import numpy as np

from .types import MatchResult

_GROW = 1.5


class Gallery:
    def __init__(
        self,
        dim: int,
        threshold: float | None = None,
        margin: float | None = None,
        capacity: int = 256,
    ) -> None:
        if threshold is None or margin is None:
            from anxin.settings import get_settings

            s = get_settings()
            threshold = s.face_match_threshold if threshold is None else threshold
            margin = s.face_match_margin if margin is None else margin
        self.dim = dim
        self.threshold = float(threshold)
        self.margin = float(margin)
        self._matrix = np.zeros((max(capacity, 1), dim), dtype=np.float32)
        self._owners: list[str] = []  # row -> person id
        self._rows: dict[str, list[int]] = {}  # person id -> rows
        self._lock = threading.RLock()

    def __len__(self) -> int:
        """Number of embeddings (rows)."""
        return len(self._owners)

    def __contains__(self, person_id: object) -> bool:
        return person_id in self._rows

    @property
    def person_count(self) -> int:
        return len(self._rows)

    def person_ids(self) -> list[str]:
        with self._lock:
            return list(self._rows)

    def _normalise(self, embedding: np.ndarray) -> np.ndarray:
        v = np.asarray(embedding, dtype=np.float32)
        v = v.reshape(1, -1) if v.ndim == 1 else v
        if v.shape[1] != self.dim:
            raise ValueError(f"embedding has {v.shape[1]} dims, gallery holds {self.dim}")
        norms = np.linalg.norm(v, axis=1, keepdims=True)
        if not np.all(np.isfinite(norms)) or np.any(norms < 1e-12):
            raise ValueError("cannot add an empty or non-finite embedding")
        return v / norms

    def add(self, person_id: str, embedding: np.ndarray) -> None:
        """Add one embedding (dim,) or several (n, dim) for a person."""
        rows = self._normalise(embedding)
        with self._lock:
            n = len(self._owners)
            need = n + len(rows)
            if need > len(self._matrix):
                grown = np.zeros(
                    (max(need, int(len(self._matrix) * _GROW) + 1), self.dim), dtype=np.float32
                )
                grown[:n] = self._matrix[:n]
                self._matrix = grown
            self._matrix[n:need] = rows
            self._owners.extend([person_id] * len(rows))
            self._rows.setdefault(person_id, []).extend(range(n, need))

    def add_many(self, items: Iterable[tuple[str, np.ndarray]]) -> None:
        for person_id, embedding in items:
            self.add(person_id, embedding)

    def remove(self, person_id: str) -> int:
        """Drop every embedding of a person; returns how many rows went."""
        with self._lock:
            rows = self._rows.pop(person_id, None)
            if not rows:
                return 0
            # Fill each hole with the current last row, from the highest hole down, so
            # the matrix stays dense and contiguous.
            for row in sorted(rows, reverse=True):
                last = len(self._owners) - 1
                if row != last:
                    moved = self._owners[last]
                    self._matrix[row] = self._matrix[last]
                    self._owners[row] = moved
                    owner_rows = self._rows[moved]
                    owner_rows[owner_rows.index(last)] = row
                self._owners.pop()
            return len(rows)

    def replace(self, person_id: str, embedding: np.ndarray) -> None:
        with self._lock:
            self.remove(person_id)
            self.add(person_id, embedding)

    def matrix(self) -> np.ndarray:
        """A read-only view of the live rows (for persistence and tests)."""
        view = self._matrix[: len(self._owners)]
        view.flags.writeable = False
        return view

    def scores(self, embedding: np.ndarray) -> dict[str, float]:
        """Every person's best score (debugging and tests; search() is the fast path)."""
        q = self._normalise(embedding)[0]
        with self._lock:
            sims = self._matrix[: len(self._owners)] @ q
            return {pid: float(sims[rows].max()) for pid, rows in self._rows.items()}

    def search(
        self, embedding: np.ndarray, threshold: float | None = None, margin: float | None = None
    ) -> MatchResult:
        """Open-set 1:N: accept only score >= threshold and (best - second person) >= margin."""
        threshold = self.threshold if threshold is None else threshold
        margin = self.margin if margin is None else margin
        q = self._normalise(embedding)[0]
        with self._lock:
            n = len(self._owners)
            if n == 0:
                return MatchResult(None, 0.0, 0.0, "empty_gallery")
            sims = self._matrix[:n] @ q
            best_row = int(np.argmax(sims))
            best = float(sims[best_row])
            candidate = self._owners[best_row]
            own = self._rows[candidate]
            if len(own) == n:
                second = -1.0
            else:
                saved = sims[own].copy()
                sims[own] = -np.inf  # only other people compete
                second = float(sims.max())
                sims[own] = saved
        if best < threshold:
            return MatchResult(None, best, second, "below_threshold", candidate)
        if best - second < margin:
            return MatchResult(None, best, second, "ambiguous", candidate)
        return MatchResult(candidate, best, second, "match", candidate)
