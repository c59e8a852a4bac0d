"""The one error of the benchmarks."""


class BenchError(RuntimeError):
    """The benchmark cannot measure what it means to (a server died, a wrong answer)."""
