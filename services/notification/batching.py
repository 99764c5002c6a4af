"""Work that greenthreads of one process hand in one at a time and that is done for many at once.

notification's sends finish one by one, each on its greenthread, but what follows is cheaper
together: marking deliveries sent (one transaction for all, see handlers.mark_sent) and looking
up the complainants' contacts (one RPC for all, intake's get_contacts). A `Batcher` collects
the items its callers submit, hands them to one flusher greenthread as a list, and gives each
caller its own result (or the batch's exception) when the list has been handled. Callers block
until then, so nothing is acknowledged before it is done.

A batch is what has arrived when the flusher runs, plus what arrives while it lingers: it
lingers only while `ready(waiting)` is false and at most `max_wait` seconds (0: never), so a
lone item is not held back when nothing else is on its way.
"""

import logging
import time
from collections.abc import Callable

import eventlet
from eventlet.event import Event
from eventlet.semaphore import Semaphore

log = logging.getLogger(__name__)


class Batcher:
    def __init__(
        self,
        flush: Callable[[list], list],
        *,
        max_size: int,
        max_wait: float = 0.0,
        ready: Callable[[int], bool] = lambda _waiting: True,
        observe: Callable[[int], None] | None = None,
        name: str = "batch",
    ):
        """``flush(items)`` returns one result per item, in order (or raises for all of them).
        ``observe(size)`` is called for every batch (a histogram)."""
        self._flush = flush
        self.max_size = max_size
        self.max_wait = max_wait
        self._ready = ready
        self._observe = observe
        self.name = name
        self._waiting: list[tuple[object, Event]] = []
        self._running = False
        self._lingering = False
        self._arrived = Semaphore(0)

    def __len__(self) -> int:
        return len(self._waiting)

    def submit(self, item):
        """Hand `item` in and wait until its batch was handled: its result, or the exception
        the batch raised."""
        done = Event()
        self._waiting.append((item, done))
        if not self._running:
            self._running = True
            eventlet.spawn_n(self._run)
        elif self._lingering:
            self._arrived.release()
        return done.wait()

    def _run(self) -> None:
        try:
            while self._waiting:
                self._linger()
                batch = self._waiting[:self.max_size]
                del self._waiting[:self.max_size]
                self._handle(batch)
        finally:
            self._running = False
            if self._waiting:  # arrived after the last look (cannot happen without a yield)
                self._running = True
                eventlet.spawn_n(self._run)

    def _linger(self) -> None:
        if self.max_wait <= 0:
            return
        deadline = time.monotonic() + self.max_wait
        self._lingering = True
        try:
            while len(self._waiting) < self.max_size and not self._ready(len(self._waiting)):
                left = deadline - time.monotonic()
                if left <= 0 or not self._arrived.acquire(timeout=left):
                    return
        finally:
            self._lingering = False
            while self._arrived.acquire(blocking=False):  # wake-ups not consumed
                pass

    def _handle(self, batch) -> None:
        if self._observe is not None:
            self._observe(len(batch))
        try:
            results = self._flush([item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"{self.name}: {len(results)} results for {len(batch)} items")
        except BaseException as exc:  # every caller of the batch gets it
            for _, done in batch:
                done.send_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, done), result in zip(batch, results, strict=True):
            done.send(result)
