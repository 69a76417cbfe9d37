"""The visitor capability in one process: the pass service (community keys, revocation
deliveries) and the expiry jobs of passes and intercom calls."""

from __future__ import annotations

from anxin.runtime import Runtime
from anxin.scheduler import EXPIRE_INTERCOM_CALLS, EXPIRE_PASSES, JobContext, registry
from domain.passes.service import PASSES, PassService, expire_passes
from domain.visitors.intercom import expire_calls


async def job_expire_passes(ctx: JobContext) -> int:
    return await expire_passes()


async def job_expire_intercom_calls(ctx: JobContext) -> int:
    return await expire_calls(ctx.runtime)


def install(runtime: Runtime) -> None:
    runtime.provide(PASSES, PassService(runtime))
    registry.add_job(EXPIRE_PASSES, job_expire_passes, seconds=60, replace=True)
    registry.add_job(EXPIRE_INTERCOM_CALLS, job_expire_intercom_calls, seconds=5, replace=True)
