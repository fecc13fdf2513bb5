"""Adaptive batching: concurrent requests for one model coalesced into one runtime call.

Each :class:`~modelkeep.serve.core.Predictor` gets one :class:`Batcher`. A request's
validated rows join the batcher's queue; one runner at a time takes what is queued (up to
``max_batch`` rows, requests never split), runs it in a worker thread and hands each request
its own outcome. While a batch runs, new requests queue up and form the next batch, so
batches grow with the load and a lone request waits for nobody. ``max_wait`` (seconds)
optionally holds a batch that is not full for that long after its first request arrived.
``max_batch=1`` turns batching off: each request runs alone in a worker thread.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from modelkeep.serve.core import Outcome, Predictor, Prepared

__all__ = ["Batcher"]


class Batcher:
    """Coalesces the requests for one predictor; see the module docstring."""

    def __init__(
        self,
        predictor: Predictor,
        *,
        max_batch: int,
        max_wait: float,
        executor: ThreadPoolExecutor,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.predictor = predictor
        self.max_batch = max_batch
        self.max_wait = max_wait
        self._executor = executor
        self._on_batch = on_batch
        self._queue: deque[tuple[Prepared, asyncio.Future[Outcome]]] = deque()
        self._running = False
        self._task: asyncio.Task[None] | None = None

    async def predict(self, prepared: Prepared) -> Outcome:
        """The outcome of ``prepared``'s rows, run with whatever else is queued."""
        loop = asyncio.get_running_loop()
        if self.max_batch <= 1 or prepared.rows >= self.max_batch:
            return await self._run_alone(loop, prepared)
        future: asyncio.Future[Outcome] = loop.create_future()
        self._queue.append((prepared, future))
        if not self._running:
            self._running = True
            self._task = loop.create_task(self._drain())
        return await future

    async def _run_alone(self, loop: asyncio.AbstractEventLoop, prepared: Prepared) -> Outcome:
        if self._on_batch is not None:
            self._on_batch(prepared.rows)
        outcomes = await loop.run_in_executor(self._executor, self.predictor.run, [prepared])
        return outcomes[0]

    async def _drain(self) -> None:
        """Run batches until the queue is empty; one drain task per batcher at a time."""
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                if self.max_wait > 0 and self._rows_queued() < self.max_batch:
                    await asyncio.sleep(self.max_wait)
                batch = self._take()
                if self._on_batch is not None:
                    self._on_batch(sum(p.rows for p, _ in batch))
                try:
                    outcomes = await loop.run_in_executor(
                        self._executor, self.predictor.run, [p for p, _ in batch]
                    )
                except BaseException as exc:  # a server fault: every waiting request sees it
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    if not future.done():  # the client may have gone away
                        future.set_result(outcome)
        finally:
            self._running = False

    def _rows_queued(self) -> int:
        return sum(p.rows for p, _ in self._queue)

    def _take(self) -> list[tuple[Prepared, asyncio.Future[Outcome]]]:
        batch = [self._queue.popleft()]
        rows = batch[0][0].rows
        while self._queue and rows + self._queue[0][0].rows <= self.max_batch:
            item = self._queue.popleft()
            rows += item[0].rows
            batch.append(item)
        return batch
