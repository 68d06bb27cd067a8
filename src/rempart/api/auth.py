"""Bearer-token authentication for every route but the public ones, with failures rate-limited.

Each client address has a token bucket of allowed authentication failures
(missing, malformed, unknown, expired or revoked tokens, disabled
principals). While its bucket is empty, that address gets ``429`` with
``Retry-After`` before its token is even looked at, so guessing tokens
costs time. Successful authentications cost nothing.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request

from rempart.access import Principal, TokenStore
from rempart.access.subject_tokens import SubjectTokenStore
from rempart.clock import Clock
from rempart.errors import RateLimited, Unauthenticated

__all__ = ["BEARER_SCHEME", "AuthFailureLimiter", "Authenticator", "client_address"]

BEARER_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "description": "A Rempart API token (rpt_…), issued with POST /tokens or `rempart tokens issue`.",
}
"""The OpenAPI security scheme every authenticated route declares (see :func:`rempart.api.create_app`)."""


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class AuthFailureLimiter:
    """A token bucket per client address: ``burst`` failures at once, refilled at ``rate`` per second."""

    def __init__(
        self,
        *,
        burst: int = 20,
        rate: float = 0.5,
        max_addresses: int = 100_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if burst < 1 or rate <= 0:
            raise ValueError("burst must be at least 1 and rate above 0")
        self.burst = burst
        self.rate = rate
        self.max_addresses = max_addresses
        self._now = monotonic
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def _refill(self, address: str, now: float) -> _Bucket | None:
        bucket = self._buckets.get(address)
        if bucket is None:
            return None
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if bucket.tokens >= self.burst:
            del self._buckets[address]  # full again: forget the address
            return None
        return bucket

    def retry_after(self, address: str) -> int | None:
        """Seconds until this address may try again, or None if it may try now."""
        if not self._buckets:  # the common case: nobody failed lately
            return None
        with self._lock:
            bucket = self._refill(address, self._now())
            if bucket is None or bucket.tokens >= 1:
                return None
            return max(1, math.ceil((1 - bucket.tokens) / self.rate))

    def failed(self, address: str) -> None:
        """Take one failure out of this address's bucket."""
        with self._lock:
            now = self._now()
            bucket = self._refill(address, now)
            if bucket is None:
                bucket = _Bucket(float(self.burst), now)
                self._buckets[address] = bucket
                while len(self._buckets) > self.max_addresses:
                    self._buckets.popitem(last=False)
            bucket.tokens = max(0.0, bucket.tokens - 1)
            self._buckets.move_to_end(address)


def client_address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


class Authenticator:
    """Turns a presented token into its principal (TokenStore), counting failures per address."""

    def __init__(self, tokens: TokenStore, clock: Clock, limiter: AuthFailureLimiter) -> None:
        self.tokens = tokens
        self.clock = clock
        self.limiter = limiter

    def subject(self, request: Request, subject_tokens: SubjectTokenStore) -> str:
        """The data subject behind a subject-scoped token (``rps_…``), rate-limited like the rest."""
        address, token = self._bearer(request, "rps_… (from support)")
        try:
            return subject_tokens.authenticate(token, self.clock.now())
        except Unauthenticated:
            self.limiter.failed(address)
            raise

    def principal(self, request: Request) -> Principal:
        """The principal behind the request's bearer token, or Unauthenticated (or RateLimited).

        Read straight from the header in the route's worker thread: no
        dependency machinery on the hot path.
        """
        address, token = self._bearer(request, "rpt_… (issue one with `rempart tokens issue`)")
        try:
            return self.tokens.authenticate(token, self.clock.now())
        except Unauthenticated:
            self.limiter.failed(address)
            raise

    def _bearer(self, request: Request, hint: str) -> tuple[str, str]:
        """The client's address and the bearer token it sent; a missing token counts as a failure."""
        address = client_address(request)
        wait = self.limiter.retry_after(address)
        if wait is not None:
            raise RateLimited(
                f"too many failed authentications from {address}; try again in {wait} s",
                retry_after=wait,
            )
        header = request.headers.get("authorization")
        scheme, _, token = (header or "").partition(" ")
        token = token.strip()
        if header is None or scheme.lower() != "bearer" or not token:
            self.limiter.failed(address)
            raise Unauthenticated(f"missing bearer token: send Authorization: Bearer {hint}")
        return address, token
