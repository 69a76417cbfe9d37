"""Encrypted files for camera captures (snapshots and clips).

Same rules as the gate snapshots (domain/access/snapshots.py): AES-GCM with the face
keyring, the associated data binding each blob to its ref, so a file copied under another
name does not decrypt. The ref `vid:{community}/{yyyymmdd}/{capture_id}-{kind}` is kept in
`VideoCapture.ref`; retention deletes by the row's age (a community's clip retention can
differ from its snapshot retention), so the row is the index.
"""

from __future__ import annotations

import contextlib
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from anxin.crypto import CryptoError, KeyRing, keyring_from_settings

PREFIX = "vid:"
MAX_BYTES = 64 * 1024 * 1024  # a 60 s sub-stream clip is ~3 MB; this bounds a bad camera
_REF = re.compile(r"^vid:(\d{1,10})/(\d{8})/(\d{1,19})-(snapshot|clip)$")


class CaptureMissing(Exception):
    pass


class CaptureStore:
    def __init__(self, root: Path, keyring: KeyRing) -> None:
        self.root = Path(root)
        self.keyring = keyring

    @staticmethod
    def ref_for(community_id: int, capture_id: int, kind: str, at: datetime) -> str:
        return f"{PREFIX}{int(community_id)}/{at.astimezone(UTC):%Y%m%d}/{int(capture_id)}-{kind}"

    def _path(self, ref: str) -> Path:
        m = _REF.match(ref)
        if m is None:
            raise CaptureMissing(ref)
        community, day, cid, kind = m.groups()
        return self.root / community / day / f"{cid}-{kind}.vid"

    def save(self, ref: str, data: bytes) -> int:
        if not data or len(data) > MAX_BYTES:
            raise ValueError("capture empty or too large")
        path = self._path(ref)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(self.keyring.encrypt(data, ref.encode()))
        os.replace(tmp, path)
        return len(data)

    def load(self, ref: str) -> bytes:
        try:
            blob = self._path(ref).read_bytes()
            return self.keyring.decrypt(blob, ref.encode())
        except (FileNotFoundError, CryptoError):
            raise CaptureMissing(ref) from None

    def delete(self, ref: str) -> bool:
        try:
            path = self._path(ref)
            path.unlink()
        except (FileNotFoundError, CaptureMissing):
            return False
        with contextlib.suppress(OSError):
            path.parent.rmdir()  # the day's folder, once empty
        return True


_stores: dict[tuple[str, str], CaptureStore] = {}


def capture_store(settings: Any) -> CaptureStore:
    """The store under `settings.data_dir/video` (one per data dir and key set)."""
    key = (str(settings.data_dir), settings.face_keys + settings.jwt_secret)
    store = _stores.get(key)
    if store is None:
        store = CaptureStore(Path(settings.data_dir) / "video", keyring_from_settings(settings))
        _stores[key] = store
    return store
