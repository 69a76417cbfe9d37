"""The households capability in one process: the job that finishes departures (move-outs,
blocks) a crash interrupted."""

from __future__ import annotations

from anxin.runtime import Runtime
from domain.households import leaving


def install(runtime: Runtime) -> None:
    leaving.register_jobs()
