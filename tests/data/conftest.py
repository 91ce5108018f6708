"""Shared fixtures for tests/data: a small synthetic world made once per session."""

from __future__ import annotations

import pytest

from unimo_kit.data.synth import WorldSummary, generate_world


@pytest.fixture(scope="session")
def synth_world(tmp_path_factory: pytest.TempPathFactory) -> WorldSummary:
    """A 160-image world (seed 7) with enough test images for every compositional category."""
    out = tmp_path_factory.mktemp("synth_world")
    return generate_world(out, seed=7, n_images=160, test_fraction=0.25, progress=False)
