"""In-process limits: a token bucket per socket, sliding windows for failed logins, a
growing delay per client address, and a count of sockets per client address. Each replica
keeps its own (see docs/security.md); the per-user quotas that span gateways are in
gateway.quotas."""

from __future__ import annotations

import time
from collections import defaultdict, deque


class TokenBucket:
    """`rate` tokens a second, at most `burst` saved up; one token per frame."""

    __slots__ = ("rate", "burst", "_tokens", "_at")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self._tokens = burst
        self._at = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


class FailureWindow:
    """At most `limit` failures per key within `window_s`; answers how long to wait."""

    def __init__(self, limit: int, window_s: float, max_keys: int = 100_000) -> None:
        self.limit, self.window_s, self.max_keys = limit, window_s, max_keys
        self._failures: dict[str, deque[float]] = defaultdict(deque)

    def _trim(self, key: str, now: float) -> deque[float]:
        q = self._failures[key]
        while q and q[0] <= now - self.window_s:
            q.popleft()
        return q

    def retry_after(self, key: str) -> float:
        """Seconds until key may try again; 0 when it may now."""
        now = time.monotonic()
        q = self._trim(key, now)
        if len(q) < self.limit:
            if not q:
                self._failures.pop(key, None)
            return 0.0
        return q[0] + self.window_s - now

    def fail(self, key: str) -> None:
        if len(self._failures) >= self.max_keys and key not in self._failures:
            self._failures.clear()  # under a flood of distinct keys, forget rather than grow
        self._trim(key, time.monotonic()).append(time.monotonic())

    def succeed(self, key: str) -> None:
        self._failures.pop(key, None)


class Backoff(FailureWindow):
    """A growing delay per key: `limit` events are free within `window_s`; each one past
    that makes the key wait `base_s`, doubled per further event, at most `max_s`. Events
    refused meanwhile (429) do not count; `window_s` without an event forgets the key.

    A success does not reset it: an attacker's own account would otherwise clear their
    address's delay between guesses."""

    def __init__(self, limit: int, window_s: float, max_s: float, base_s: float = 1.0,
                 max_keys: int = 100_000) -> None:
        super().__init__(limit, window_s, max_keys)
        self.max_s, self.base_s = max_s, base_s
        self._state: dict[str, list[float]] = {}  # key -> [count, last event, until]

    def retry_after(self, key: str) -> float:
        state = self._state.get(key)
        if state is None:
            return 0.0
        now = time.monotonic()
        _, last, until = state
        if now >= until and now - last > self.window_s:
            del self._state[key]
        return max(0.0, until - now)

    def fail(self, key: str) -> None:
        now = time.monotonic()
        state = self._state.get(key)
        if state is None or now - state[1] > self.window_s:
            if len(self._state) >= self.max_keys:
                self._state.clear()  # under a flood of distinct keys, forget rather than grow
            state = self._state[key] = [0.0, now, now]
        state[0] += 1
        state[1] = now
        over = int(state[0]) - self.limit
        if over > 0:
            state[2] = now + min(self.max_s, self.base_s * 2.0 ** min(over - 1, 30))

    def succeed(self, key: str) -> None:
        """Nothing: see the class docstring."""


class ConnectionCounter:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: dict[str, int] = defaultdict(int)

    def acquire(self, address: str) -> bool:
        if self._open[address] >= self.limit:
            return False
        self._open[address] += 1
        return True

    def release(self, address: str) -> None:
        self._open[address] -= 1
        if self._open[address] <= 0:
            del self._open[address]
