"""Benchmarks: scripts that print ratios against a baseline measured in the same
run, rounds interleaved (see docs/performance.md). Timing goals live here, never
in timed unit tests."""
