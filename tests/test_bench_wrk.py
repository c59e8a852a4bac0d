"""The benchmarks hand wrk a duration it accepts: wrk refuses fractions of a
second (`-d0.5s`), so a fractional --duration or --warmup is rounded up."""

from __future__ import annotations

import pytest

from bench.load import Load, wrk_load_args


@pytest.mark.parametrize(("duration", "flag"), [(0.5, "-d1s"), (2.0, "-d2s"), (2.2, "-d3s"), (0.0, "-d1s")])
def test_wrk_gets_whole_seconds(duration: float, flag: str) -> None:
    assert wrk_load_args(Load(duration, connections=32, client_threads=2)) == ["wrk", "-t2", "-c32", flag]
