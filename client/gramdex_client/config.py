"""Where the server is, how to authenticate, how long to wait, and when to retry: arguments, else environment."""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

ENV_URL = "GRAMDEX_URL"
ENV_API_KEY = "GRAMDEX_API_KEY"
ENV_TIMEOUT = "GRAMDEX_TIMEOUT"
ENV_MAX_RETRIES = "GRAMDEX_MAX_RETRIES"
ENV_INDEX = "GRAMDEX_INDEX"
DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Retry:
    """Retries on connection errors, 429 and 503 (never on another 4xx): exponential backoff with jitter, or the
    server's Retry-After when it sends one (capped at `max_retry_after_s`)."""

    max_retries: int = 3
    backoff_s: float = 0.25
    max_backoff_s: float = 8.0
    max_retry_after_s: float = 60.0
    statuses: frozenset[int] = frozenset({429, 503})

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number `attempt + 1`."""
        if retry_after is not None:
            # the server knows when capacity frees up; a little jitter keeps many clients from returning at once
            return min(retry_after, self.max_retry_after_s) + random.uniform(0, self.backoff_s)
        ceiling = min(self.max_backoff_s, self.backoff_s * 2 ** attempt)
        return random.uniform(ceiling / 2, ceiling)  # "equal jitter": spread out, yet never near zero


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class Config:
    base_url: str
    api_key: str | None
    timeout_s: float
    retry: Retry
    index: str | None


def resolve(base_url: str | None, api_key: str | None, timeout_s: float | None, retry: Retry | int | None,
            index: str | None) -> Config:
    env = os.environ
    if retry is None:
        retry = Retry(max_retries=int(env.get(ENV_MAX_RETRIES, Retry.max_retries)))
    elif isinstance(retry, int):
        retry = Retry(max_retries=retry)
    timeout = timeout_s if timeout_s is not None else float(env.get(ENV_TIMEOUT, DEFAULT_TIMEOUT_S))
    return Config(base_url=(base_url or env.get(ENV_URL) or DEFAULT_URL).rstrip("/"),
                  api_key=api_key if api_key is not None else env.get(ENV_API_KEY) or None,
                  timeout_s=timeout, retry=retry, index=index or env.get(ENV_INDEX) or None)
