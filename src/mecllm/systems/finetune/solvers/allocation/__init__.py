"""Allocation steps (bandwidth, powers, compute, T for fixed x and phi): the surrogate, its
three engines (cvxpy, a direct cone program, a barrier method) and the equal split."""
