"""What one server process holds: settings, database, bus, counters and the services that
other capabilities plug in (WeChat client, device bridge, dispatcher, scheduler).

A service is anything with `async start()` and `async stop()`; they start in the order
added and stop in reverse.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from anxin.bus import Bus, InProcessBus, RedisBus
from anxin.db import close_db, init_db
from anxin.kv import KV, MemoryKV, RedisKV
from anxin.settings import Settings

log = logging.getLogger(__name__)


class Service(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class Runtime:
    def __init__(self, settings: Settings, *, owns_database: bool = True) -> None:
        self.settings = settings
        # False: another runtime in this process already holds the ORM connections
        # (a second bridge in a test); this one neither opens nor closes them.
        self.owns_database = owns_database
        self.redis: Any = None
        self.bus: Bus = InProcessBus()
        self.kv: KV = MemoryKV(settings.redis_prefix)
        self.services: dict[str, Any] = {}
        self._started: list[Service] = []

    def add(self, name: str, service: Any) -> Any:
        self.services[name] = service
        return service

    def get(self, name: str) -> Any:
        return self.services[name]

    async def start(self, *, apply_migrations: bool = True) -> None:
        self.settings.check_secrets()
        if self.owns_database:
            await init_db(self.settings, apply_migrations=apply_migrations)
        if self.settings.redis_url:
            import redis.asyncio as aioredis  # maintained successor of aioredis

            self.redis = aioredis.from_url(self.settings.redis_url)
            await self.redis.ping()
            self.bus = RedisBus(self.redis, self.settings.redis_prefix + "bus:")
            self.kv = RedisKV(self.redis, self.settings.redis_prefix)
        for name, service in self.services.items():
            await service.start()
            self._started.append(service)
            log.info("started %s", name)

    async def stop(self) -> None:
        while self._started:
            service = self._started.pop()
            try:
                await service.stop()
            except Exception:
                log.exception("stopping %s failed", type(service).__name__)
        await self.bus.close()
        await self.kv.close()
        if self.redis is not None:
            await self.redis.aclose()
        if self.owns_database:
            await close_db()
