"""Anxin: infrastructure every layer may use (settings, database, bus, clock, errors)."""

import os

# numpy's OpenBLAS starts a thread per core and busy-waits between calls. In a server that
# also runs onnxruntime, the event loop and other processes, those threads fight for the
# cores: a 10,000-face gallery search took 16 ms p50 / 85 ms p95 that way on a loaded
# 2-core machine, 0.7 ms / 10 ms with one thread (docs/performance.md). Set before numpy
# is imported (anything that imports numpy here imports anxin first); an operator's own
# value wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
