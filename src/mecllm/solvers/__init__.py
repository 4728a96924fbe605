"""Solvers: association steps, allocation steps, the Dinkelbach loop and the registry."""

from mecllm.solvers.registry import ALGORITHMS, get_algorithm, solve

__all__ = ["ALGORITHMS", "get_algorithm", "solve"]
