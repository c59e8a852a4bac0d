"""What signed values decoded to, remembered once their signature passed.

The viz page sends the same session cookie and the same CSRF token with every
ping and poll; checking a signature (building the serializer, the HMAC,
base64 and JSON decoding) cost those hot paths a large share of their time
(bench/hot_paths.py). :class:`CheckedSignatures` keeps, per worker, what a
value decoded to and when it was signed: bounded (least recently used first),
thread-safe, only values whose check passed, and the age checked on every
hit as itsdangerous's ``TimestampSigner.unsign`` checks it. Its users key it
by the value *and* the secret keys, so a key rotation checks everything again.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class CheckedSignatures(Generic[T]):
    def __init__(self, max_entries: int = 4096) -> None:
        self.max_entries = max_entries
        self._checked: OrderedDict[Hashable, tuple[T, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, max_age: float | None, now: float | None = None) -> T | None:
        """What ``key`` decoded to, if its check passed before and it is at
        most ``max_age`` seconds old (None: no limit); else None."""
        with self._lock:
            hit = self._checked.get(key)
            if hit is not None:
                self._checked.move_to_end(key)
        if hit is None:
            return None
        decoded, signed_at = hit
        age = int(time.time() if now is None else now) - signed_at
        if max_age is None or 0 <= age <= max_age:
            return decoded
        return None

    def put(self, key: Hashable, decoded: T, signed_at: int) -> None:
        """``key`` passed its check, decoding to ``decoded``, signed at ``signed_at`` (Unix seconds)."""
        with self._lock:
            self._checked[key] = (decoded, signed_at)
            self._checked.move_to_end(key)
            while len(self._checked) > self.max_entries:
                self._checked.popitem(last=False)

    def held(self) -> list[T]:
        """What the remembered values decoded to (for tests and curiosity)."""
        with self._lock:
            return [decoded for decoded, _ in self._checked.values()]

    def __len__(self) -> int:
        return len(self._checked)
