"""The results store: SQLite in WAL mode, one committed transaction per finished trial.

A trial is keyed by (experiment, setting, seed, algorithm, preset, code version); a rerun
skips the keys already present, so an interrupted run loses at most the trials in flight.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS trials (
    experiment   TEXT NOT NULL,
    setting      TEXT NOT NULL,
    seed         INTEGER NOT NULL,
    algorithm    TEXT NOT NULL,
    preset       TEXT NOT NULL,
    code_version TEXT NOT NULL,
    row          TEXT NOT NULL,
    finished_at  REAL NOT NULL,
    PRIMARY KEY (experiment, setting, seed, algorithm, preset, code_version)
)
"""

Key = tuple[str, str, int, str, str, str]


def code_version() -> str:
    """A short hash of the package's source: any change to the code starts new keys."""
    digest = hashlib.sha256()
    root = resources.files("mecllm")
    for path in sorted(Path(str(root)).rglob("*.py")):
        digest.update(path.relative_to(Path(str(root))).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


class ResultsStore:
    """Finished trials under ``folder/results.sqlite``."""

    def __init__(self, folder: str | Path, *, fresh: bool = False) -> None:
        self.path = Path(folder) / "results.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if fresh:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        self._db = sqlite3.connect(self.path, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a commit survives power loss
        self._db.execute(_SCHEMA)
        self._db.commit()

    def done(self, experiment: str, preset: str, version: str) -> set[Key]:
        """Keys already finished for this experiment, preset and code version."""
        cursor = self._db.execute(
            "SELECT experiment, setting, seed, algorithm, preset, code_version FROM trials "
            "WHERE experiment = ? AND preset = ? AND code_version = ?",
            (experiment, preset, version),
        )
        return {tuple(r) for r in cursor.fetchall()}

    def add(self, key: Key, row: dict[str, Any]) -> None:
        """Commit one finished trial in its own transaction."""
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO trials VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (*key, json.dumps(row), time.time()),
            )

    def rows(self, experiment: str, preset: str, version: str) -> list[dict[str, Any]]:
        """Every stored row of an experiment, in key order."""
        cursor = self._db.execute(
            "SELECT row FROM trials WHERE experiment = ? AND preset = ? AND code_version = ? "
            "ORDER BY setting, seed, algorithm",
            (experiment, preset, version),
        )
        return [json.loads(r[0]) for r in cursor.fetchall()]

    def finished_times(self, keys: Iterable[Key]) -> dict[Key, float]:
        """When each key was committed (for checking that a rerun recomputed nothing)."""
        out = {}
        for key in keys:
            cursor = self._db.execute(
                "SELECT finished_at FROM trials WHERE experiment = ? AND setting = ? AND "
                "seed = ? AND algorithm = ? AND preset = ? AND code_version = ?",
                key,
            )
            found = cursor.fetchone()
            if found:
                out[key] = float(found[0])
        return out

    def close(self) -> None:
        """Close the connection."""
        self._db.close()
