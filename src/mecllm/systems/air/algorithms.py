"""The registered channel predictors of the ``edge-air`` system (``air-*``).

Each one generates the instance's channels if needed, fits or trains on the training drops
(neural ones: cached weights in the data folder's ``weights/``, resumed if interrupted),
predicts the test drops from their noisy histories and returns the predictions with the
predictor's costs. ``--seed`` seeds a network's weights and training; ``--time-limit`` bounds
its training.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import numpy as np

from mecllm.core.algorithms import AlgorithmRegistry
from mecllm.core.options import SolveOptions
from mecllm.systems.air.instance import KIND, AirInstance
from mecllm.systems.air.predictors import CLASSIC, Predictor
from mecllm.systems.air.scoring import nmse_db, nmse_mean_db
from mecllm.systems.air.solution import AirPlan, AirResult, PredictorCost

#: The registered predictors of the air system.
AIR_ALGORITHMS: AlgorithmRegistry[AirInstance, AirResult] = AlgorithmRegistry(KIND)
get_air_algorithm = AIR_ALGORITHMS.lookup
solve_air = AIR_ALGORITHMS.solve

#: Receives one line per training epoch or data-generation step.
Reporter = Callable[[str], None]

_CLASSIC_HELP = {
    "outdated": "no prediction: the last observed slot repeated",
    "ls-ar": "complex AR(8) per horizon step, least squares over the training drops",
    "wiener": "space-time LMMSE per subcarrier from the training covariance",
    "ar-kalman": "per-drop AR(4) by Yule-Walker, Kalman-filtered over the noisy history",
    "pad": "Prony (order 8) in the angle-delay domain",
}
_NETWORK_HELP = {
    "gru": "2-layer GRU (width 384), trained",
    "lstm": "2-layer LSTM (width 384), trained",
    "transformer": "2-layer transformer of MiniLM's shape, trained from scratch",
    "lm": "the packaged pretrained MiniLM-L6, attention/FFN frozen (LLM4CP's recipe)",
    "lm-random": "lm with random frozen weights (does pretraining matter?)",
}


def _reporter(options: SolveOptions) -> Reporter | None:
    value = options.extra.get("report")
    return value if callable(value) else None


def _classic_run(name: str) -> Callable[[AirInstance, SolveOptions], AirResult]:
    def run(instance: AirInstance, options: SolveOptions) -> AirResult:
        started = time.perf_counter()
        data = instance.data(_data_progress(_reporter(options)))
        predictor: Predictor = CLASSIC[name](instance.settings)
        t = time.perf_counter()
        predictor.fit(data)
        fit_s = time.perf_counter() - t
        history, noise = data.history("test")
        t = time.perf_counter()
        predictions = predictor.predict(history, noise)
        per_drop = (time.perf_counter() - t) / history.shape[0] * 1e3
        t = time.perf_counter()
        predictor.predict(history[:1], noise[:1])
        single = (time.perf_counter() - t) * 1e3
        cost = PredictorCost(
            fit_s=fit_s,
            ms_per_drop_batch1=single,
            ms_per_drop_batch256=per_drop,
            threads=_blas_threads(),
        )
        return _result(f"air-{name}", predictions, data.target("test"), cost, started)

    return run


def _network_run(name: str) -> Callable[[AirInstance, SolveOptions], AirResult]:
    def run(instance: AirInstance, options: SolveOptions) -> AirResult:
        from mecllm.systems.air.networks import NetworkPredictor, TrainingPlan, threads

        started = time.perf_counter()
        report = _reporter(options)
        data = instance.data(_data_progress(report))
        s = instance.settings
        plan = TrainingPlan(
            epochs=s.epochs,
            time_limit_s=options.time_limit_s,
            batch=s.batch,
            learning_rate=s.learning_rate,
            adapters=s.adapters,
            seed=options.seed,
        )
        predictor = NetworkPredictor(name, s, plan)

        def epoch(done: int, total: int, note: str) -> None:
            if report is not None:
                report(f"air-{name}: epoch {done}/{total}, {note}")

        predictor.fit(data, instance.folder, epoch)
        history, noise = data.history("test")
        predictions = predictor.predict(history, noise)
        single, many = predictor.timing_ms(history, noise)
        total, trained = predictor.parameters()
        cost = PredictorCost(
            parameters=total,
            trained_parameters=trained,
            fit_s=predictor.fit_s,
            epochs=predictor.epochs,
            ms_per_drop_batch1=single,
            ms_per_drop_batch256=many,
            threads=threads(),
        )
        return _result(f"air-{name}", predictions, data.target("test"), cost, started)

    return run


def _data_progress(report: Reporter | None) -> Callable[[int, int], None] | None:
    if report is None:
        return None

    def progress(done: int, total: int) -> None:
        report(f"generating channels: {done}/{total} drops")

    return progress


def _blas_threads() -> int:
    return int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1))


def _result(
    algorithm: str,
    predictions: np.ndarray,
    target: np.ndarray,
    cost: PredictorCost,
    started: float,
) -> AirResult:
    return AirResult(
        algorithm=algorithm,
        plan=AirPlan(algorithm, np.asarray(predictions, dtype=np.complex64)),
        nmse_db=[float(v) for v in nmse_db(target, predictions)],
        nmse_db_mean=nmse_mean_db(target, predictions),
        cost=cost,
        status="heuristic" if cost.epochs == 0 else "converged",
        iterations=cost.epochs,
        wall_time_s=time.perf_counter() - started,
    )


def _perfect(instance: AirInstance, options: SolveOptions) -> AirResult:
    started = time.perf_counter()
    data = instance.data(_data_progress(_reporter(options)))
    target = data.target("test")
    return _result("air-perfect", target, target, PredictorCost(), started)


AIR_ALGORITHMS.add(
    "air-perfect",
    "oracle, not a predictor: the true future channels (the bound of every score)",
    _perfect,
)
for _name, _help in _CLASSIC_HELP.items():
    AIR_ALGORITHMS.add(f"air-{_name}", _help, _classic_run(_name))
for _name, _help in _NETWORK_HELP.items():
    AIR_ALGORITHMS.add(f"air-{_name}", _help, _network_run(_name))
