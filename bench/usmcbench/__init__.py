"""The `usmc bench` driver: see bench/usmc_bench.py."""
