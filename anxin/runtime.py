"""What one server process holds: settings, database, bus, counters, the key ring, and the
services its role installs (see `boot/roles.py`).

Services are found by typed keys, not by name: a capability declares `KEY: Key[Thing] =
Key("thing")` beside its interface, installs with `runtime.provide(KEY, thing)` and readers
get a `Thing` back from `runtime.get(KEY)`. A service with `async start()` / `async stop()`
is started in the order provided and stopped in reverse.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar, cast

from anxin.bus import Bus, InProcessBus, RedisBus
from anxin.crypto import KeyRing, keyring_from_settings
from anxin.db import close_db, init_db
from anxin.kv import KV, MemoryKV, RedisKV
from anxin.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")


class Service(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass(frozen=True)
class Key(Generic[T]):
    """A typed slot on the runtime: `runtime.get(key)` returns a `T`."""

    name: str

    def __repr__(self) -> str:
        return f"Key({self.name!r})"


class MissingService(LookupError):
    """This process's role did not install the service asked for."""


class Runtime:
    def __init__(
        self, settings: Settings, *, owns_database: bool = True, role: str = "all"
    ) -> None:
        self.settings = settings
        self.role = role
        # False: another runtime in this process already holds the ORM connections
        # (a second bridge in a test); this one neither opens nor closes them.
        self.owns_database = owns_database
        self.redis: Any = None
        self.bus: Bus = InProcessBus()
        self.kv: KV = MemoryKV(settings.redis_prefix)
        self._keyring: KeyRing | None = None
        self._services: dict[Key[Any], Any] = {}
        self._started: list[Service] = []

    @property
    def keyring(self) -> KeyRing:
        """The process's one key ring (face data, device secrets, snapshots, pass keys)."""
        if self._keyring is None:
            self._keyring = keyring_from_settings(self.settings)
        return self._keyring

    def provide(self, key: Key[T], service: T) -> T:
        if key in self._services:
            raise ValueError(f"{key} is already provided")
        self._services[key] = service
        return service

    def get(self, key: Key[T]) -> T:
        try:
            return cast(T, self._services[key])
        except KeyError:
            raise MissingService(f"{key} is not installed in a {self.role!r} process") from None

    def has(self, key: Key[Any]) -> bool:
        return key in self._services

    def replace(self, key: Key[T], service: T) -> T:
        """Swap the service under `key` (tests swap a backend into a running process);
        returns the one it replaced. Starting and stopping the new one is the caller's."""
        old = self.get(key)
        self._services[key] = service
        return old

    def remove(self, key: Key[Any]) -> None:
        self._services.pop(key, None)

    def named(self) -> list[tuple[str, Any]]:
        """(key name, service) for each service once (readiness checks, logs)."""
        seen: set[int] = set()
        out = []
        for key, service in self._services.items():
            if id(service) not in seen:
                seen.add(id(service))
                out.append((key.name, service))
        return out

    def keys(self) -> list[str]:
        return [k.name for k in self._services]

    async def start(self, *, apply_migrations: bool = True) -> None:
        self.settings.check_secrets()
        if self.owns_database:
            await init_db(
                self.settings,
                apply_migrations=apply_migrations and not self.settings.skip_migrations,
            )
        if self.settings.redis_url:
            from anxin.redis_client import connect

            cluster = self.settings.redis_cluster
            self.redis = await connect(self.settings.redis_url, cluster=cluster)
            self.bus = RedisBus(self.redis, self.settings.redis_prefix + "bus:", sharded=cluster)
            self.kv = RedisKV(self.redis, self.settings.redis_prefix)
        seen: set[int] = set()
        for key, service in self._services.items():
            if id(service) in seen or not hasattr(service, "start"):
                continue  # one service may fill several keys (the bridge: BRIDGE, DEVICES)
            seen.add(id(service))
            await service.start()
            self._started.append(service)
            log.info("started %s", key.name)

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
