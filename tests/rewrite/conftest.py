"""Shared fixtures for the rewrite tests: hand-built graphs with spans (no spaCy), a small
synthetic world, and the spaCy scene-graph parser loaded once per session."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory):
    """A small synthetic world (seed 3, 40 images, 3 captions each)."""
    from unimo_kit.data.synth import generate_world

    out = tmp_path_factory.mktemp("rewrite_world")
    return generate_world(out, seed=3, n_images=40, captions_per_image=3, progress=False)


@pytest.fixture(scope="session")
def parser():
    """The spaCy scene-graph parser (loaded once)."""
    from unimo_kit.rewrite.parser import SceneGraphParser

    parser = SceneGraphParser()
    parser.parse("a red circle")  # load now, not inside a timed test
    return parser
