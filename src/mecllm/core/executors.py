"""Where trials run: a local process pool (serial with one worker) or a Dask cluster.

Both yield results as they finish; the caller commits each one at once. Dask is optional
(``pip install 'mecllm[dask]'``) and imported only when asked for.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, TypeVar

from mecllm.core.errors import InvalidInputError
from mecllm.core.processes import die_with_parent

S = TypeVar("S")
R = TypeVar("R")


def run_local(fn: Callable[[S], R], items: Sequence[S], workers: int) -> Iterator[R]:
    """Run ``fn`` over ``items`` in a process pool (in this process when ``workers`` is 1).

    The workers die with this process: each asks the kernel for SIGKILL when its parent dies,
    and if the iteration stops early (an error, Ctrl-C, SIGTERM turned into an exception) the
    pool's processes are terminated rather than left to finish their trials.
    """
    if workers < 1:
        raise InvalidInputError(f"--workers must be >= 1, got {workers}")
    if workers == 1:
        for item in items:
            yield fn(item)
        return
    pool = ProcessPoolExecutor(
        max_workers=workers, initializer=die_with_parent, initargs=(os.getpid(),)
    )
    finished_normally = False
    try:
        pending: set[Future[R]] = set()
        queue = iter(items)
        # Keep only a few tasks queued so that an interruption loses little work.
        for item in queue:
            pending.add(pool.submit(fn, item))
            if len(pending) >= 2 * workers:
                break
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                yield future.result()
                nxt = next(queue, None)
                if nxt is not None:
                    pending.add(pool.submit(fn, nxt))
        finished_normally = True
    finally:
        if not finished_normally:
            _terminate_workers(pool)
        pool.shutdown(wait=finished_normally, cancel_futures=True)


def _terminate_workers(pool: ProcessPoolExecutor) -> None:
    """Stop a pool's worker processes now (their trials are lost; finished ones are stored)."""
    processes = list(getattr(pool, "_processes", {}).values())
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(timeout=5)


def run_dask(
    fn: Callable[[S], R], items: Sequence[S], workers: int, scheduler: str | None
) -> Iterator[R]:
    """Run ``fn`` over ``items`` on Dask: a LocalCluster, or the cluster at ``scheduler``."""
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise InvalidInputError(
            "the dask backend needs dask.distributed: pip install 'mecllm[dask]'"
        ) from None
    cluster: Any = None
    if scheduler:
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise InvalidInputError(f"--scheduler {scheduler} cannot be reached: {exc}") from None
    else:
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
        client = Client(cluster)
    try:
        futures = client.map(fn, list(items), pure=False)
        for future in as_completed(futures):
            yield future.result()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


#: A Dask scheduler address: tcp://HOST:PORT (or tls://, or HOST:PORT).
_SCHEDULER = re.compile(r"^((tcp|tls)://)?[A-Za-z0-9._\-\[\]:]+:\d{1,5}$")
BACKENDS = ("local", "dask")


def check_backend(backend: str, workers: int, scheduler: str | None) -> None:
    """Refuse a bad backend, worker count or scheduler address before any work."""
    if backend not in BACKENDS:
        raise InvalidInputError(f"--backend must be local or dask, got {backend!r}")
    if isinstance(workers, bool) or workers < 1:
        raise InvalidInputError(f"--workers must be >= 1, got {workers}")
    if scheduler is not None:
        if backend != "dask":
            raise InvalidInputError("--scheduler needs --backend dask")
        if not _SCHEDULER.match(scheduler):
            raise InvalidInputError(
                f"--scheduler must look like tcp://HOST:PORT, got {scheduler!r}"
            )


def run_trials(
    fn: Callable[[S], R],
    items: Sequence[S],
    *,
    backend: str,
    workers: int,
    scheduler: str | None = None,
) -> Iterator[R]:
    """Dispatch to the named backend (``local`` or ``dask``)."""
    check_backend(backend, workers, scheduler)
    if backend == "local":
        return run_local(fn, items, workers)
    return run_dask(fn, items, workers, scheduler)
