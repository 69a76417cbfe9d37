"""Scheduled jobs that run once per tick, however many workers run the scheduler.

APScheduler 3 (AsyncIOScheduler) fires the jobs in every process; it does not coordinate
processes. So each firing first claims `job:<name>:<tick>` in the runtime's KV store
(Redis SET NX EX across processes, memory on the embedded default): the first worker to
claim a tick runs the job, the others skip it. Interval jobs fire on epoch-aligned
boundaries, so every worker computes the same tick; the tick is rounded, so clocks a
little apart (less than half an interval) still agree.

Other capabilities register jobs on the shared `registry` (at import, or in
`build_runtime`), e.g.::

    from anxin.scheduler import registry, JobContext

    async def expire_passes(ctx: JobContext) -> int: ...
    registry.add_job("expire_passes", expire_passes, seconds=60)

and tests call a job directly: `await run_job_once("mark_devices_offline", runtime)`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from anxin.clock import clock
from anxin.runtime import Key, Runtime

log = logging.getLogger(__name__)

# Names other capabilities register under (documented here so they are not invented twice).
EXPIRE_PASSES = "expire_passes"
EXPIRE_INTERCOM_CALLS = "expire_intercom_calls"
PURGE_BIOMETRICS_AFTER_MOVE_OUT = "purge_biometrics_after_move_out"


@dataclass(frozen=True)
class JobContext:
    runtime: Runtime
    name: str
    tick: datetime  # the tick this run stands for (UTC)


JobFunc = Callable[[JobContext], Awaitable[Any]]


@dataclass(frozen=True)
class JobSpec:
    name: str
    func: JobFunc
    seconds: int | None = None  # every N seconds, aligned to the epoch
    cron: dict[str, Any] | None = None  # CronTrigger fields, in `timezone`
    timezone: str = "UTC"

    @property
    def period_s(self) -> int:
        """Granularity of a tick: the interval, or a minute for cron jobs."""
        return self.seconds or 60

    def tick_at(self, now: float) -> int:
        return round(now / self.period_s) * self.period_s


@dataclass
class JobRegistry:
    jobs: dict[str, JobSpec] = field(default_factory=dict)

    def add_job(
        self,
        name: str,
        func: JobFunc,
        *,
        seconds: int | None = None,
        cron: dict[str, Any] | None = None,
        timezone: str = "UTC",
        replace: bool = False,
    ) -> JobSpec:
        if (seconds is None) == (cron is None):
            raise ValueError("a job needs exactly one of seconds= or cron=")
        if seconds is not None and seconds < 1:
            raise ValueError("seconds must be at least 1")
        if name in self.jobs and not replace:
            raise ValueError(f"job {name!r} is already registered")
        spec = JobSpec(name, func, seconds, cron, timezone)
        self.jobs[name] = spec
        return spec

    def job(
        self, name: str, *, seconds: int | None = None, cron: dict[str, Any] | None = None
    ) -> Callable[[JobFunc], JobFunc]:
        """Decorator form of `add_job`."""

        def register(func: JobFunc) -> JobFunc:
            self.add_job(name, func, seconds=seconds, cron=cron)
            return func

        return register

    def get(self, name: str) -> JobSpec:
        try:
            return self.jobs[name]
        except KeyError:
            raise KeyError(f"no job named {name!r}; registered: {sorted(self.jobs)}") from None


registry = JobRegistry()
_last_runtime: Runtime | None = None


async def run_job_once(
    name: str, runtime: Runtime | None = None, *, job_registry: JobRegistry | None = None
) -> Any:
    """Run a job now, without a claim (tests, the CLI, an operator's manual rerun)."""
    runtime = runtime or _last_runtime
    if runtime is None:
        raise RuntimeError("no runtime: pass one, or start a Scheduler first")
    spec = (job_registry or registry).get(name)
    return await spec.func(JobContext(runtime, name, clock.now()))


class Scheduler:
    """The runtime service: an AsyncIOScheduler whose every firing is claimed first."""

    def __init__(
        self,
        runtime: Runtime,
        job_registry: JobRegistry | None = None,
        *,
        enabled: bool = True,
    ) -> None:
        self.runtime = runtime
        self.registry = job_registry or registry
        self.enabled = enabled  # a process may run the API without running jobs
        self._aps: AsyncIOScheduler | None = None

    def add_job(self, name: str, func: JobFunc, **kwargs: Any) -> JobSpec:
        spec = self.registry.add_job(name, func, **kwargs)
        if self._aps is not None:
            self._schedule(spec)
        return spec

    async def start(self) -> None:
        global _last_runtime
        _last_runtime = self.runtime
        if not self.enabled:
            return
        self._aps = AsyncIOScheduler(timezone=UTC)
        for spec in self.registry.jobs.values():
            self._schedule(spec)
        self._aps.start()

    async def stop(self) -> None:
        if self._aps is not None and self._aps.running:
            self._aps.shutdown(wait=False)
        self._aps = None

    def _schedule(self, spec: JobSpec) -> None:
        assert self._aps is not None
        if spec.seconds is not None:
            # Start on an epoch boundary so every worker fires on the same ticks
            # (APScheduler reads the wall clock, so this does too).
            first = math.ceil(time.time() / spec.seconds) * spec.seconds
            trigger: Any = IntervalTrigger(
                seconds=spec.seconds, start_date=datetime.fromtimestamp(first, UTC)
            )
        else:
            trigger = CronTrigger(timezone=spec.timezone, **(spec.cron or {}))
        self._aps.add_job(
            self.fire,
            trigger,
            args=[spec.name],
            id=spec.name,
            name=spec.name,
            replace_existing=True,
            max_instances=1,
            coalesce=True,  # after a pause, one catch-up run, not a burst
            misfire_grace_time=max(1, spec.period_s // 2),
        )

    async def claim(self, spec: JobSpec, tick: int) -> bool:
        ttl = max(spec.period_s * 2, 60)
        return await self.runtime.kv.set(f"job:{spec.name}:{tick}", "1", ttl, only_new=True)

    async def fire(self, name: str) -> bool:
        """What APScheduler calls: run `name` if this worker wins the tick's claim."""
        spec = self.registry.get(name)
        tick = spec.tick_at(clock.time())
        if not await self.claim(spec, tick):
            return False
        try:
            await spec.func(JobContext(self.runtime, name, datetime.fromtimestamp(tick, UTC)))
        except Exception:
            # One failed run never stops the schedule; the next tick tries again.
            log.exception("job %s failed (tick %s)", name, tick)
        return True


SCHEDULER: Key[Scheduler] = Key("scheduler")


def install(runtime: Runtime) -> None:
    """Run the registered jobs in this process (each tick claimed once across processes)."""
    runtime.provide(SCHEDULER, Scheduler(runtime))
