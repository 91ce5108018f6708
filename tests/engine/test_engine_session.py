"""One Ray session per stage: ``engine.session`` joins map_units calls, keeps named actor
pools (their state built once), and a whole stage connects once; ``claim_work``'s one rule
for work folders; ``cap_threads`` limits a worker's compute threads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from unimo_kit.engine import EngineOptions, Unit, map_units
from unimo_kit.engine.core import claim_work, session

RAY = EngineOptions("ray", max_retries=1, progress=False, workers=2)


def _setup() -> dict:
    return {"pid": os.getpid(), "built": 1}


def _pid(state: dict, payload: str) -> tuple[int, int]:
    Path(payload).write_text("done\n")
    return state["pid"], state["built"]


def _units(folder: Path, tag: str, n: int = 4) -> list[Unit]:
    return [Unit(i, str(folder / f"{tag}{i}"), folder / f"{tag}{i}") for i in range(n)]


@pytest.fixture(scope="module")
def by_value(ray_session):
    """The unit functions of this module pickled by value (workers cannot import tests/)."""
    ray_session.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    return ray_session


def test_a_named_pool_keeps_its_actors_for_the_session(by_value, tmp_path):
    with session(RAY):
        first = map_units(_pid, _units(tmp_path, "a"), RAY, setup=_setup, pool="p")
        second = map_units(_pid, _units(tmp_path, "b"), RAY, setup=_setup, pool="p")
    assert len(set(first)) == 2  # two workers
    assert set(second) == set(first)  # the same actors, their state built once


def test_without_a_pool_each_call_has_its_own_actors(by_value, tmp_path):
    with session(RAY):
        first = map_units(_pid, _units(tmp_path, "a"), RAY, setup=_setup)
        second = map_units(_pid, _units(tmp_path, "b"), RAY, setup=_setup)
    assert not set(first) & set(second)


def test_a_stage_connects_to_ray_once(by_value, pairs_file, tmp_path, monkeypatch):
    """rewrite maps two kinds of unit (vocabulary, rewriting): one connection for both."""
    from unimo_kit.engine import ray_backend, run_rewrite

    calls = []
    connect = ray_backend.connect
    monkeypatch.setattr(ray_backend, "connect", lambda options: calls.append(1) or connect(options))
    run_rewrite(pairs_file, tmp_path / "out.jsonl", engine=RAY, unit_records=8, progress=False)
    assert calls == [1]


def test_claim_work_keeps_the_first_layout_and_refuses_other_settings(tmp_path):
    work = tmp_path / "OUT.engine"
    assert claim_work(work, {"seed": 1, "types": ("a",)}, {"units": 4}) == {"units": 4}
    # the same settings (a tuple reads back as a list): the first run's layout stays
    assert claim_work(work, {"seed": 1, "types": ["a"]}, {"units": 9}) == {"units": 4}
    with pytest.raises(ValueError, match=r"other options or input \(seed, spares differ\)"):
        claim_work(work, {"seed": 2, "types": ["a"], "spares": 1}, {"units": 4})
    assert json.loads((work / "engine.json").read_text())["layout"] == {"units": 4}


def test_claim_work_names_an_unreadable_record(tmp_path):
    work = tmp_path / "OUT.engine"
    work.mkdir()
    (work / "engine.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"engine\.json:1: not JSON"):
        claim_work(work, {"seed": 1})


def test_cap_threads_limits_blas_and_torch_to_the_units_cpus():
    """In a child process: the cap changes the process's thread pools for good."""
    code = (
        "import numpy, torch, threadpoolctl\n"
        "from unimo_kit.engine.core import cap_threads\n"
        "assert cap_threads(0.5) == 1 and cap_threads(2.5) == 2\n"
        "cap_threads(0.5)\n"
        "pools = {p['num_threads'] for p in threadpoolctl.threadpool_info()}\n"
        "print(torch.get_num_threads(), sorted(pools))\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.split(maxsplit=1) == ["1", "[1]\n"]
