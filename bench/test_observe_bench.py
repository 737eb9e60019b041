"""pytest-benchmark cases for monitoring's per-call costs, each beside its baseline in one group:

    pytest bench/test_observe_bench.py --benchmark-enable --benchmark-only --benchmark-group-by=group

- recorder: one 20 ms frame pair (caller + agent) into the spooling CallRecorder, against keeping both
  frames in a Python list (what an unbounded in-memory recorder costs).
- store: writing one finished 20-turn call record (JSON + upsert) on SQLite in WAL mode, against a
  bare INSERT of the same JSON text into a one-column table.
"""
import json
import sqlite3
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from observe_helpers import fa_turn, sample_record  # noqa: E402

from offhook.observe.recording import CallRecorder  # noqa: E402
from offhook.observe.store_sqlite import SqliteStore  # noqa: E402

FRAME = b"\x10" * 160


@pytest.mark.parametrize("side", ["offhook", "baseline"])
def test_recorder_frame_pair(benchmark, tmp_path, side):
    benchmark.group = "recorder frame pair"
    if side == "offhook":
        benchmark.name = "offhook: CallRecorder.caller + .agent (spooled)"
        r = CallRecorder(tmp_path, "CAbench")
        k = [0]

        def step():
            k[0] += 1
            r.caller(FRAME, 0.02 * k[0])
            r.agent(FRAME, 0.02 * k[0] + 0.06)
        benchmark(step)
        r.discard()
    else:
        benchmark.name = "baseline: list.append x2 (in memory)"
        frames: list = []

        def step():
            frames.append(FRAME)
            frames.append(FRAME)
        benchmark(step)


def record():
    r = sample_record("CA" + "0" * 32, started_at=1.0, duration=180.0)
    r.turns = [fa_turn(i, 0.8, speech_end=5.0 * i) for i in range(20)]
    return r


@pytest.mark.parametrize("side", ["offhook", "baseline"])
def test_store_finish_write(benchmark, tmp_path, side):
    benchmark.group = "store write of a finished call (SQLite WAL)"
    rec = record()
    if side == "offhook":
        benchmark.name = "offhook: row snapshot + upsert"
        store = SqliteStore(str(tmp_path / "calls.sqlite3"))
        store._connect()
        store._migrate()
        benchmark(lambda: store._upsert(store._row(rec)))
        store._close()
    else:
        benchmark.name = "baseline: json.dumps + bare INSERT"
        db = sqlite3.connect(tmp_path / "raw.sqlite3", isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("CREATE TABLE t (record TEXT)")
        benchmark(lambda: db.execute("INSERT INTO t VALUES (?)", (json.dumps(rec.to_dict()),)))
        db.close()
