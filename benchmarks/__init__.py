"""Benchmarks: latency, throughput, memory and MFU of every artifact against eager in one run (`python -m benchmarks`,
`make bench`, `make bench-quick`), each target in its own process (worker.py); interleaved rotations for close
comparisons (interleaved.py). Recorded results: benchmarks/results/ (README "Benchmarks")."""
