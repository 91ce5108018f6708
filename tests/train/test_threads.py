"""Torch CPU threads of a run: one on a machine of at most two cores unless the config says."""

from __future__ import annotations

from unimo_kit.train.trainer import device_threads


def test_few_cores_default_to_one_thread_and_the_config_wins():
    assert device_threads(None, "cpu", cores=2) == 1
    assert device_threads(None, "cpu", cores=1) == 1
    assert device_threads(None, "cpu", cores=16) is None  # torch's default
    assert device_threads(2, "cpu", cores=2) == 2  # asked for: kept
    assert device_threads(None, "cuda:0", cores=2) is None  # the CPU only feeds the GPU
    assert device_threads(None, "cpu") in (1, None)  # this machine's own count
