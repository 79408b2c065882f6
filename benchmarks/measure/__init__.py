"""Measuring helpers shared by the benchmarks: :mod:`.peaks` (time and peak memory of a call) and
:mod:`.chart` (peak memory against resolution as a PNG). A package, so benchmarks/run.py does not list
them as benchmarks."""
