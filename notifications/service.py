"""The notifications capability in one process: the realtime hub (this process's open
sockets), the dispatcher (outbox -> WeChat / in-app) and the built-in jobs."""

from __future__ import annotations

import logging

from anxin.runtime import Runtime
from anxin.scheduler import registry
from notifications.dispatcher import DISPATCHER, Dispatcher
from notifications.jobs import register_builtin_jobs
from notifications.realtime import REALTIME, RealtimeHub

log = logging.getLogger(__name__)


def install(runtime: Runtime) -> None:
    runtime.provide(REALTIME, RealtimeHub(runtime))
    runtime.provide(DISPATCHER, Dispatcher(runtime))
    register_builtin_jobs(registry)
