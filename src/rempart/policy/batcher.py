"""Group commit for decisions: concurrent callers' cache misses go to Cedar together.

Callers (threads, or asyncio tasks) hand their requests to one worker thread.
Cache hits are answered at once, in the caller's own thread. Misses are
queued; the worker takes everything queued, waits at most ``max_wait``
seconds from the first arrival for more (up to ``max_batch`` requests), then
evaluates the lot in one ``is_authorized_batch`` call and wakes every caller.
While it evaluates, new misses queue up for the next round, as appends do in
the log's sequencer.

Every decision is still made against the policy set in force when its batch
is evaluated, and is exact (see :mod:`rempart.policy.engine`).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Sequence

from rempart.errors import InvalidInput, Overloaded, RempartError
from rempart.policy.engine import PolicyEngine
from rempart.policy.model import Decision, DecisionRequest

__all__ = ["DecisionBatcher"]


class _Ticket:
    __slots__ = ("decisions", "done", "error", "future", "loop", "requests")

    def __init__(
        self,
        requests: list[DecisionRequest],
        loop: asyncio.AbstractEventLoop | None = None,
        future: asyncio.Future[list[Decision]] | None = None,
    ) -> None:
        self.requests = requests
        self.decisions: list[Decision] | None = None
        self.error: RempartError | None = None
        self.done = threading.Event()
        self.loop = loop
        self.future = future


def _settle(future: asyncio.Future[list[Decision]], ticket: _Ticket) -> None:
    if future.done():
        return
    if ticket.decisions is not None:
        future.set_result(ticket.decisions)
    else:
        future.set_exception(ticket.error or Overloaded("the decision batcher stopped"))


class DecisionBatcher:
    """Gathers concurrent callers' decision requests into shared Cedar calls.

    >>> from rempart.policy.policy_set import CompiledPolicies, PolicySchema, DEFAULT_POLICIES
    >>> engine = PolicyEngine(CompiledPolicies.compile(DEFAULT_POLICIES, PolicySchema.default()))
    >>> with DecisionBatcher(engine) as batcher:
    ...     batcher.decide([])
    []
    """

    def __init__(
        self,
        engine: PolicyEngine,
        *,
        max_wait: float = 0.0002,
        max_batch: int = 1024,
        timeout: float = 10.0,
    ) -> None:
        if not 0 <= max_wait <= 0.01:
            raise InvalidInput("max_wait is between 0 and 0.01 seconds (a few hundred microseconds)")
        if max_batch < 1:
            raise InvalidInput("max_batch must be at least 1")
        self.engine = engine
        self.max_wait = max_wait
        self.max_batch = max_batch
        self.timeout = timeout
        self._queue: list[_Ticket] = []
        self._queued = 0
        self._work = threading.Condition()
        self._stopping = False
        self._rounds = 0
        self._thread = threading.Thread(target=self._run, name="rempart-policy-batcher", daemon=True)
        self._thread.start()

    @property
    def rounds(self) -> int:
        """How many batches the worker has evaluated."""
        return self._rounds

    # -- callers -----------------------------------------------------------------

    def _split(
        self, requests: Sequence[DecisionRequest]
    ) -> tuple[list[Decision | None], list[DecisionRequest]]:
        found = self.engine.lookup(self.engine.policies, requests)
        return found, [r for r, d in zip(requests, found, strict=True) if d is None]

    @staticmethod
    def _merge(found: list[Decision | None], evaluated: list[Decision]) -> list[Decision]:
        fresh = iter(evaluated)
        return [d if d is not None else next(fresh) for d in found]

    def decide(self, requests: Sequence[DecisionRequest]) -> list[Decision]:
        """Decide from any thread; blocks until the decisions are made."""
        found, missing = self._split(requests)
        if not missing:
            return [d for d in found if d is not None]
        ticket = _Ticket(missing)
        self._enqueue(ticket)
        if not ticket.done.wait(self.timeout):
            raise Overloaded(f"no policy decision within {self.timeout} s")
        if ticket.decisions is None:
            raise ticket.error or Overloaded("the decision batcher stopped")
        return self._merge(found, ticket.decisions)

    async def decide_async(self, requests: Sequence[DecisionRequest]) -> list[Decision]:
        """Decide from asyncio code without blocking the event loop."""
        found, missing = self._split(requests)
        if not missing:
            return [d for d in found if d is not None]
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Decision]] = loop.create_future()
        self._enqueue(_Ticket(missing, loop, future))
        try:
            evaluated = await asyncio.wait_for(future, self.timeout)
        except TimeoutError:
            raise Overloaded(f"no policy decision within {self.timeout} s") from None
        return self._merge(found, evaluated)

    def _enqueue(self, ticket: _Ticket) -> None:
        with self._work:
            if self._stopping:
                raise Overloaded("the decision batcher is closed")
            self._queue.append(ticket)
            self._queued += len(ticket.requests)
            self._work.notify()

    # -- the worker ------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._work:
                while not self._queue and not self._stopping:
                    self._work.wait()
                if not self._queue and self._stopping:
                    return
                deadline = time.monotonic() + self.max_wait
                while self._queued < self.max_batch and not self._stopping:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._work.wait(remaining)
                batch, self._queue = self._queue, []
                self._queued = 0
            self._evaluate(batch)

    def _evaluate(self, batch: list[_Ticket]) -> None:
        engine = self.engine
        policies = engine.policies
        try:
            unique = list(dict.fromkeys(r for t in batch for r in t.requests))
            evaluated = dict(zip(unique, engine.evaluate(policies, unique), strict=True))
            engine.remember(policies, evaluated)
            for ticket in batch:
                ticket.decisions = [evaluated[r] for r in ticket.requests]
        except RempartError as exc:
            for ticket in batch:
                ticket.error = exc
        except Exception as exc:  # never leave a caller waiting: fail closed with the cause
            error = Overloaded(f"policy evaluation failed: {exc}")
            for ticket in batch:
                ticket.error = error
        self._rounds += 1
        for ticket in batch:
            ticket.done.set()
            if ticket.loop is not None and ticket.future is not None:
                with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                    ticket.loop.call_soon_threadsafe(_settle, ticket.future, ticket)

    # -- lifecycle --------------------------------------------------------------------

    def close(self) -> None:
        """Finish the queued work, then stop the worker."""
        with self._work:
            self._stopping = True
            self._work.notify()
        self._thread.join()

    def __enter__(self) -> DecisionBatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
