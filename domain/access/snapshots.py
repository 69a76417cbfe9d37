"""Encrypted store for gate snapshots (and other short-lived photos, e.g. rider photos).

A snapshot is a JPEG a terminal sent with an event. It is personal data kept only for
`settings.snapshot_retention_days` (the access log shows it to guards investigating an
incident), so:

* every file is AES-GCM encrypted with the face keyring, the associated data binding the
  blob to its ref (a file copied under another name does not decrypt);
* the ref carries the time it was written, so retention needs no database column and
  is enforced by `purge_older_than` even when the clock is moved in tests;
* refs are opaque strings `snap:{community}/{yyyymmdd}/{epoch_ms}-{key}` stored in
  `AccessEvent.snapshot_ref`; the retention job blanks that field when it deletes.

API: `store = snapshot_store(settings)`; `ref = store.save(community_id, key, jpeg)`;
`store.load(ref) -> bytes`; `store.purge_older_than(cutoff) -> [refs]`.
"""

from __future__ import annotations

import os
import re
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from anxin.clock import clock
from anxin.crypto import CryptoError, KeyRing, keyring_from_settings
from anxin.errors import not_found

PREFIX = "snap:"
MAX_SNAPSHOT_BYTES = 1024 * 1024
_KEY_SAFE = re.compile(r"[^A-Za-z0-9_.-]")
_REF = re.compile(r"^snap:(\d{1,10})/(\d{8})/(\d{13,16})-([A-Za-z0-9_.-]{1,80})$")


class SnapshotStore:
    def __init__(self, root: Path, keyring: KeyRing) -> None:
        self.root = Path(root)
        self.keyring = keyring

    # -- paths ---------------------------------------------------------------------
    def _path(self, ref: str) -> Path:
        m = _REF.match(ref)
        if m is None:
            raise not_found("snapshot")
        community, day, ms, key = m.groups()
        return self.root / community / day / f"{ms}-{key}.snap"

    @staticmethod
    def written_at(ref: str) -> datetime | None:
        m = _REF.match(ref)
        return None if m is None else datetime.fromtimestamp(int(m.group(3)) / 1000, UTC)

    # -- API -------------------------------------------------------------------------
    def save(self, community_id: int, key: str, jpeg_bytes: bytes) -> str:
        """Encrypt and write; returns the ref to store in the row that needs it."""
        if not jpeg_bytes or len(jpeg_bytes) > MAX_SNAPSHOT_BYTES:
            raise ValueError("snapshot empty or too large")
        safe = _KEY_SAFE.sub("_", key)[:60] or "x"
        safe = f"{safe}.{secrets.token_hex(4)}"  # a redelivered event never overwrites
        now_ms = int(clock.time() * 1000)
        day = datetime.fromtimestamp(now_ms / 1000, UTC).strftime("%Y%m%d")
        ref = f"{PREFIX}{int(community_id)}/{day}/{now_ms}-{safe}"
        path = self._path(ref)
        path.parent.mkdir(parents=True, exist_ok=True)
        blob = self.keyring.encrypt(jpeg_bytes, ref.encode())
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(blob)
        os.replace(tmp, path)
        return ref

    def load(self, ref: str) -> bytes:
        path = self._path(ref)
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            raise not_found("snapshot") from None
        try:
            return self.keyring.decrypt(blob, ref.encode())
        except CryptoError:
            raise not_found("snapshot") from None

    def delete(self, ref: str) -> bool:
        try:
            self._path(ref).unlink()
            return True
        except FileNotFoundError:
            return False

    def purge_older_than(self, cutoff: datetime, community_id: int | None = None) -> list[str]:
        """Delete every snapshot written before `cutoff`; returns the refs deleted."""
        cutoff_ms = int(cutoff.timestamp() * 1000)
        deleted: list[str] = []
        if not self.root.exists():
            return deleted
        communities = (
            [self.root / str(community_id)]
            if community_id is not None
            else [p for p in self.root.iterdir() if p.is_dir()]
        )
        for cdir in communities:
            if not cdir.is_dir():
                continue
            for ddir in sorted(p for p in cdir.iterdir() if p.is_dir()):
                for f in ddir.glob("*.snap"):
                    ms, _, key = f.stem.partition("-")
                    if ms.isdigit() and int(ms) < cutoff_ms:
                        f.unlink(missing_ok=True)
                        deleted.append(f"{PREFIX}{cdir.name}/{ddir.name}/{f.stem}")
                if not any(ddir.iterdir()):
                    ddir.rmdir()
        return deleted


_stores: dict[tuple[str, str], SnapshotStore] = {}


def snapshot_store(settings: Any) -> SnapshotStore:
    """The store under `settings.data_dir/snapshots` (one per data dir and key set)."""
    key = (str(settings.data_dir), settings.face_keys + settings.jwt_secret)
    store = _stores.get(key)
    if store is None:
        store = SnapshotStore(
            Path(settings.data_dir) / "snapshots", keyring_from_settings(settings)
        )
        _stores[key] = store
    return store
