"""The one way the tests wait: poll a condition until a deadline.

    data = wait_for(lambda: (s := server.status(path))["status"] == "running" and s,
                    90, "the app to run")

Every error the condition raises counts as "not yet" (connection refused or
reset, a read timeout, an HTTP 5xx turned into an exception by
``raise_for_status()``, an ``ApiException`` from a cluster still settling):
the wait goes on until the deadline, and the AssertionError it raises then
names what it waited for, the last answer and the last error. To stop at once
(a server process that died), pass ``abort``: it is called before every try
and fails the test itself (``pytest.fail`` is not an ``Exception``, so it is
never retried; neither is anything raised by ``abort``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

INTERVAL = 0.2  # seconds between two tries


def wait_for(
    predicate: Callable[[], T],
    timeout: float,
    what: str,
    *,
    interval: float = INTERVAL,
    abort: Callable[[], Any] | None = None,
) -> T:
    """Call ``predicate`` until it returns something true, and return that.

    Raises AssertionError after ``timeout`` seconds (at least one try is made)."""
    deadline = time.monotonic() + timeout
    tries = 0
    last_value: Any = None
    last_error: Exception | None = None
    while True:
        if abort is not None:
            abort()
        tries += 1
        try:
            value = predicate()
        except Exception as exc:  # anything: "not yet"
            last_error = exc
        else:
            if value:
                return value
            last_value, last_error = value, None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        time.sleep(min(interval, remaining))
    if last_error is not None:
        last = f"the last try raised {type(last_error).__name__}: {last_error}"
    else:
        last = f"the last answer was {last_value!r}"
    raise AssertionError(
        f"timed out after {timeout:g}s ({tries} tries) waiting for {what}; {last}"
    ) from last_error
