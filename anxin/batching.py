"""Group commit: writes that many concurrent tasks make, done as one statement.

A `Batcher` collects what its callers submit while its previous flush is running and
flushes them together: a lone caller waits for no timer (its item goes at the next turn
of the event loop), and under load one database round trip serves every event that
arrived meanwhile. Each caller gets its own result, or the exception its item raised:
when a batch fails, its items are flushed again one by one, so one bad row fails alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    def __init__(
        self, flush: Callable[[list[T]], Awaitable[list[R]]], *, max_size: int = 256
    ) -> None:
        self._flush = flush
        self.max_size = max_size
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._task: asyncio.Task[None] | None = None
        self.batches = 0  # flushes done (for the benchmark's profile)
        self.items = 0

    async def submit(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._pending.append((item, future))
        task = self._task
        if task is None or task.done() or task.get_loop() is not loop:
            self._task = loop.create_task(self._run())
        return await future

    async def _run(self) -> None:
        await asyncio.sleep(0)  # callers woken in the same turn join this batch
        loop = asyncio.get_running_loop()
        # Items left by a loop that has since closed (a test's loop) have no caller now.
        self._pending = [(i, f) for i, f in self._pending if f.get_loop() is loop]
        while self._pending:
            batch, self._pending = self._pending[: self.max_size], self._pending[self.max_size :]
            await self._flush_batch(batch)

    async def _flush_batch(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        self.batches += 1
        self.items += len(batch)
        try:
            results = await self._flush([item for item, _ in batch])
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0][1], exc=exc)
                return
            log.info("batch of %d failed (%s); flushing one by one", len(batch), exc)
            for one in batch:
                await self._flush_batch([one])
            return
        except BaseException as exc:  # cancelled: the callers must not wait forever
            for _, future in batch:
                _settle(future, exc=exc)
            raise
        for (_, future), result in zip(batch, results, strict=True):
            _settle(future, result=result)


def _settle(
    future: asyncio.Future[R], *, result: R | None = None, exc: BaseException | None = None
) -> None:
    if future.done():
        return
    try:
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)  # type: ignore[arg-type]
    except RuntimeError:  # its loop closed meanwhile: nobody waits for it
        pass
