"""Wiring: the services this capability adds to a process's runtime."""

from __future__ import annotations

import logging

from anxin.runtime import Runtime
from anxin.scheduler import Scheduler, registry
from notifications.dispatcher import Dispatcher
from notifications.jobs import register_builtin_jobs
from notifications.realtime import RealtimeHub

log = logging.getLogger(__name__)


def install(runtime: Runtime) -> None:
    """Add the realtime hub, the dispatcher, the bus listener and the scheduler."""
    runtime.add("realtime", RealtimeHub(runtime))
    runtime.add("dispatcher", Dispatcher(runtime))
    register_builtin_jobs(registry)
    runtime.add("scheduler", Scheduler(runtime))
