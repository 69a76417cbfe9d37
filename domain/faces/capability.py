"""The faces capability in one process: galleries, the terminal library sync, and the
retention jobs. Installed by the composition root (boot/roles.py) like every capability."""

from __future__ import annotations

from anxin.runtime import Runtime
from domain.faces.galleries import GALLERIES, FaceGalleries
from domain.faces.library import FACE_LIBRARY, LibrarySync
from domain.faces.service import register_jobs


def install(runtime: Runtime) -> None:
    runtime.provide(GALLERIES, FaceGalleries(runtime))
    runtime.provide(FACE_LIBRARY, LibrarySync(runtime))
    register_jobs()
