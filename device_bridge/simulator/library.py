"""The device's local face library: versioned, numpy-only (no face model on the device)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..protocol import LibrarySyncArgs, embedding_from_b64, embedding_to_b64
from ..sealing import SealError, library_aad, open_sealed


@dataclass(frozen=True)
class Match:
    person_id: str | None
    score: float  # best cosine similarity, even when under the threshold


class FaceLibrary:
    """person id -> unit embedding + valid_until, at a library version.

    Changes carry the version they produce and are applied in version order, all of a
    sync at once (synchronously, so no capture can be matched half-way through a sync).
    """

    def __init__(self) -> None:
        self.version = 0
        self._emb: dict[str, np.ndarray] = {}
        self._valid_until: dict[str, int | None] = {}
        self._matrix: np.ndarray | None = None
        self._ids: list[str] = []

    def __len__(self) -> int:
        return len(self._emb)

    def __contains__(self, person_id: str) -> bool:
        return person_id in self._emb

    def apply(self, args: LibrarySyncArgs, key: bytes, device_id: str) -> str | None:
        """Apply a sync; None on success, else a refusal reason (library unchanged).
        Templates arrive sealed to this terminal (`key`, sealing.py); one in clear is refused."""
        if not args.full and args.base_version > self.version:
            return "version_mismatch"  # a gap: the server must resend from self.version
        if any(c.embedding for c in args.changes):
            return "unsealed"
        if any(c.op == "add" and not c.sealed for c in args.changes):
            return "malformed"
        try:
            decoded = {
                c.version: _unit(
                    np.frombuffer(
                        open_sealed(key, c.sealed, library_aad(device_id, c.person_id, c.version)),
                        dtype="<f4",
                    )
                )
                for c in args.changes
                if c.op == "add" and c.sealed
            }
        except (SealError, ValueError):
            return "malformed"
        emb = {} if args.full else dict(self._emb)
        valid = {} if args.full else dict(self._valid_until)
        start = 0 if args.full else self.version
        for c in sorted(args.changes, key=lambda c: c.version):
            if c.version <= start:
                continue  # already applied: re-delivery is harmless
            if c.op == "remove":
                emb.pop(c.person_id, None)
                valid.pop(c.person_id, None)
            else:
                emb[c.person_id] = decoded[c.version]
                valid[c.person_id] = c.valid_until
        self._emb, self._valid_until = emb, valid
        self.version = max(args.version, start) if not args.full else args.version
        self._matrix = None
        return None

    def entries(self) -> list[dict[str, object]]:
        """The whole library as a peer exports it (section 5a): in clear, to be sealed."""
        return [
            {
                "person_id": pid,
                "embedding": embedding_to_b64(vec),
                "valid_until": self._valid_until.get(pid),
            }
            for pid, vec in sorted(self._emb.items())
        ]

    def replace(self, entries: list[dict[str, object]], version: int) -> None:
        """Take a peer's library as ours, at its version, all at once."""
        emb: dict[str, np.ndarray] = {}
        valid: dict[str, int | None] = {}
        for e in entries:
            pid = str(e["person_id"])
            emb[pid] = _unit(embedding_from_b64(str(e["embedding"])))
            vu = e.get("valid_until")
            valid[pid] = int(vu) if isinstance(vu, int) else None
        self._emb, self._valid_until, self.version = emb, valid, version
        self._matrix = None

    def match(self, query: np.ndarray, threshold: float, now_ms: int) -> Match:
        if not self._emb:
            return Match(None, 0.0)
        if self._matrix is None:
            self._ids = list(self._emb)
            self._matrix = np.stack([self._emb[i] for i in self._ids])
        scores = self._matrix @ _unit(np.asarray(query, dtype=np.float32))
        # Expired entries never match, even before the server's removal arrives.
        for k, pid in enumerate(self._ids):
            vu = self._valid_until.get(pid)
            if vu is not None and vu < now_ms:
                scores[k] = -1.0
        best = int(np.argmax(scores))
        score = float(scores[best])
        return Match(self._ids[best] if score >= threshold else None, score)


def _unit(v: np.ndarray) -> np.ndarray:
    v = v.astype(np.float32).reshape(-1)
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v
