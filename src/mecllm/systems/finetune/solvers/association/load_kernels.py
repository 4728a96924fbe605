"""Compiled loops over the servers' loads for :mod:`threshold` (numba): the cap checks and
updates the part-1 repair makes millions of at 10,000 users. Imported only for instances
large enough to pay numba's start-up (about 0.4 s per process); small ones run the same
loops in Python (:class:`threshold._Loads`).
"""

from __future__ import annotations

from numba import njit

from mecllm.core.arrays import BoolArray, FloatArray, IntArray


@njit(cache=True)
def fits(used: FloatArray, room: FloatArray, usage: FloatArray, user: int, server: int) -> bool:
    for k in range(3):
        if not used[server, k] + usage[k, user, server] <= room[server, k]:
            return False
    return True


@njit(cache=True)
def over(used: FloatArray, room: FloatArray, server: int) -> bool:
    for k in range(3):
        if used[server, k] > room[server, k]:
            return True
    return False


@njit(cache=True)
def move(used: FloatArray, usage: FloatArray, user: int, frm: int, to: int) -> None:
    for k in range(3):
        used[frm, k] -= usage[k, user, frm]
        used[to, k] += usage[k, user, to]


@njit(cache=True)
def empty_server(
    server: int,
    members: IntArray,
    choices: IntArray,
    finite: BoolArray,
    order: IntArray,
    used: FloatArray,
    room: FloatArray,
    usage: FloatArray,
    assignment: IntArray,
) -> None:
    """Members of an over-full ``server`` leave, in ``order``, each for the first server of its
    ``choices`` (cheapest first, while finite) that has room, until the server fits."""
    for j in order:
        if not over(used, room, server):
            return
        user = members[j]
        for c in range(choices.shape[1]):
            to = choices[j, c]
            if not finite[j, to]:
                break
            if to != server and fits(used, room, usage, user, to):
                move(used, usage, user, server, to)
                assignment[user] = to
                break
