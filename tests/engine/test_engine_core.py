"""map_units: results in unit order, finished units skipped, a crashed unit retried to the
same output, a unit that always fails named in an error (no hang); locally and on Ray."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from unimo_kit.engine import EngineError, EngineOptions, Unit, map_units

ray = pytest.importorskip("ray")
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the unit functions below

RAY = EngineOptions("ray", max_retries=2, progress=False)
LOCAL = EngineOptions("local", progress=False)


def _square(payload: tuple[str, int]) -> int:
    path, x = payload
    Path(path).write_text(f"{x * x}\n")
    return x * x


def _crash_once(payload: tuple[str, int]) -> int:
    """Kills its worker process on the first attempt (a marker file remembers it)."""
    path, x = payload
    marker = Path(path + ".attempted")
    if x == 2 and not marker.exists():
        marker.write_text("")
        os._exit(1)
    return _square(payload)


def _always_fails(payload: tuple[str, int]) -> int:
    _, x = payload
    if x == 1:
        raise OSError(f"disk on fire at {x}")
    return _square(payload)


def _with_state(state: dict, payload: tuple[str, int]) -> int:
    return _square(payload) + state["offset"] * 0


def _setup() -> dict:
    return {"offset": 1, "pid": os.getpid()}


def _units(folder: Path, n: int = 5) -> list[Unit]:
    return [
        Unit(i, (str(folder / f"{i}.txt"), i), folder / f"{i}.txt", 1, f"unit {i} of test")
        for i in range(n)
    ]


def _outputs(folder: Path, n: int = 5) -> list[str]:
    return [(folder / f"{i}.txt").read_text() for i in range(n)]


def test_local_and_ray_give_the_same_files_in_order(ray_session, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert map_units(_square, _units(tmp_path / "a"), LOCAL) == [0, 1, 4, 9, 16]
    assert map_units(_square, _units(tmp_path / "b"), RAY) == [0, 1, 4, 9, 16]
    assert _outputs(tmp_path / "a") == _outputs(tmp_path / "b")


def test_finished_units_are_skipped(ray_session, tmp_path):
    units = _units(tmp_path)
    (tmp_path / "1.txt").write_text("done before\n")  # a unit of a killed run
    results = map_units(_square, units, RAY)
    assert results == [0, None, 4, 9, 16]
    assert (tmp_path / "1.txt").read_text() == "done before\n"


def test_a_crashed_task_is_retried_to_the_same_output(ray_session, tmp_path):
    results = map_units(_crash_once, _units(tmp_path), RAY)
    assert (tmp_path / "2.txt.attempted").exists()
    assert results == [0, 1, 4, 9, 16]
    assert _outputs(tmp_path) == [f"{i * i}\n" for i in range(5)]


def test_a_crashed_actor_is_restarted_to_the_same_output(ray_session, tmp_path):
    def crash_once(state: dict, payload: tuple[str, int]) -> int:
        return _crash_once(payload)

    results = map_units(crash_once, _units(tmp_path), RAY, setup=_setup)
    assert (tmp_path / "2.txt.attempted").exists()
    assert results == [0, 1, 4, 9, 16]


def test_a_unit_that_always_fails_is_named(ray_session, tmp_path):
    with pytest.raises(
        EngineError, match=r"unit 1 of test failed after 3 attempt\(s\).*disk on fire"
    ):
        map_units(_always_fails, _units(tmp_path), RAY)
    with pytest.raises(OSError, match="disk on fire") as info:
        map_units(_always_fails, _units(tmp_path), LOCAL)
    assert "in unit 1 of test" in info.value.__notes__


def test_a_unit_that_writes_nothing_is_an_error(ray_session, tmp_path):
    with pytest.raises(EngineError, match="finished without writing"):
        map_units(lambda payload: 0, _units(tmp_path, 2), RAY)


def test_actor_pool_holds_the_state_once_per_worker(ray_session, tmp_path):
    results = map_units(_with_state, _units(tmp_path), RAY, setup=_setup)
    assert results == [0, 1, 4, 9, 16]
