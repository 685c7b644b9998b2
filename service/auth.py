"""API keys (`Authorization: Bearer KEY`) and per-key token-bucket rate limits (per worker process)."""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from dataclasses import dataclass

from service.errors import Problem
from service.settings import ApiKey, Settings


@dataclass
class Bucket:
    rate: float
    burst: float
    tokens: float
    stamp: float

    def take(self) -> float:
        """0 when a request may pass, else the seconds until one may."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


# a client whose key does not match gets this many tries, then one per second: guessing keys stays slow
FAILED_AUTH_BURST = 10
FAILED_AUTH_RATE = 1.0


class Guard:
    """Who may call, and how often. Settings are swapped whole on reload; buckets of kept keys survive."""

    # buckets kept for client addresses (anonymous limits, failed keys): many addresses must not grow memory
    max_client_buckets = 100_000

    def __init__(self, settings: Settings) -> None:
        self._buckets: dict[str, Bucket] = {}
        self.configure(settings)

    def configure(self, settings: Settings) -> None:
        self.keys: list[ApiKey] = list(settings.api_keys)
        # queries need a key once any client (non-admin) key exists; admin keys alone only guard admin routes
        self.required = any(not k.admin for k in self.keys)
        self.anonymous_rate = settings.anonymous_rate_per_s
        self.anonymous_burst = settings.anonymous_burst
        kept = {f"key:{k.name}" for k in self.keys}
        self._buckets = {n: b for n, b in self._buckets.items() if n in kept or n.startswith("ip:")}

    def _find(self, token: str) -> ApiKey | None:
        # compare against every key in constant time, so timing does not reveal a key's prefix; digests first,
        # because compare_digest returns at once on inputs of different lengths (that would reveal a key's length)
        digest = hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
        found = None
        for k in self.keys:
            if hmac.compare_digest(hashlib.sha256(k.key.encode()).digest(), digest):
                found = k
        return found

    @staticmethod
    def _bearer(authorization: str | None) -> str | None:
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None

    def check(self, authorization: str | None, client: str, *, admin: bool = False) -> None:
        token = self._bearer(authorization)
        key = self._find(token) if token else None
        if admin:
            if key is None:
                raise Problem("unauthorized", "an admin API key is required",
                              headers={"WWW-Authenticate": 'Bearer realm="gramdex"'})
            if not key.admin:
                raise Problem("forbidden", "this API key is not an admin key")
            return
        if self.required and key is None:
            if token:
                self._limit(f"fail:{client}", FAILED_AUTH_RATE, FAILED_AUTH_BURST)
            detail = "the API key is not valid" if token else "send Authorization: Bearer <API key>"
            raise Problem("unauthorized", detail, headers={"WWW-Authenticate": 'Bearer realm="gramdex"'})
        if key is not None:
            if key.rate_per_s is not None:
                self._limit(f"key:{key.name}", key.rate_per_s, key.burst)
        elif self.anonymous_rate is not None:
            self._limit(f"ip:{client}", self.anonymous_rate, self.anonymous_burst)

    def _limit(self, who: str, rate: float, burst: int | None) -> None:
        size = float(burst if burst is not None else max(1, math.ceil(rate)))
        bucket = self._buckets.get(who)
        if bucket is None or bucket.rate != rate or bucket.burst != size:
            if bucket is None and not who.startswith("key:") and len(self._buckets) >= self.max_client_buckets:
                self._prune()
            bucket = self._buckets[who] = Bucket(rate, size, size, time.monotonic())
        wait = bucket.take()
        if wait > 0:
            raise Problem("rate-limited", f"over {rate:g} requests per second; retry after the given seconds",
                          headers={"Retry-After": str(max(1, math.ceil(wait)))})

    def _prune(self) -> None:
        """Forget client buckets that have refilled (they hold no state), else the oldest half of them."""
        now = time.monotonic()
        clients = [n for n in self._buckets if not n.startswith("key:")]
        idle = [n for n in clients if (now - self._buckets[n].stamp) * self._buckets[n].rate >= self._buckets[n].burst]
        for name in idle or clients[: len(clients) // 2 + 1]:
            del self._buckets[name]
