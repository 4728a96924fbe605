"""Where trials run: a local process pool (serial with one worker) or a Dask cluster.

Both yield results as they finish; the caller commits each one at once. Dask is optional
(``pip install 'mecllm[dask]'``) and imported only when asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, TypeVar

from mecllm.core.errors import InvalidInputError

S = TypeVar("S")
R = TypeVar("R")


def run_local(fn: Callable[[S], R], items: Sequence[S], workers: int) -> Iterator[R]:
    """Run ``fn`` over ``items`` in a process pool (in this process when ``workers`` is 1)."""
    if workers < 1:
        raise InvalidInputError(f"--workers must be >= 1, got {workers}")
    if workers == 1:
        for item in items:
            yield fn(item)
        return
    pool = ProcessPoolExecutor(max_workers=workers)
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
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


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
        client = Client(scheduler)
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


def run_trials(
    fn: Callable[[S], R],
    items: Sequence[S],
    *,
    backend: str,
    workers: int,
    scheduler: str | None = None,
) -> Iterator[R]:
    """Dispatch to the named backend (``local`` or ``dask``)."""
    if backend == "local":
        if scheduler:
            raise InvalidInputError("--scheduler needs --backend dask")
        return run_local(fn, items, workers)
    if backend == "dask":
        return run_dask(fn, items, workers, scheduler)
    raise InvalidInputError(f"--backend must be local or dask, got {backend!r}")
