"""Benchmarks: CPU and GPU measurements written as JSON under bench/results/."""
