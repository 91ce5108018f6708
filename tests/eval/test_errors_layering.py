"""The encoder layer needs nothing from ``unimo_kit.eval``: its checkpoint errors are defined
below it and re-exported by ``unimo_kit.eval.errors`` as the same objects."""

import subprocess
import sys

import pytest

from unimo_kit.encoders import base, unimo
from unimo_kit.eval import errors

PROBE = """
import sys
import unimo_kit.encoders
from unimo_kit.encoders.unimo import UnimoEncoder
from unimo_kit.encoders.base import EvalError
try:
    UnimoEncoder(sys.argv[1] + "/missing", device="cpu")
except EvalError as exc:
    print("refused:", exc)
encoder = UnimoEncoder(sys.argv[1], device="cpu")
print("dim", encoder.dim)
print("eval modules", sorted(m for m in sys.modules if m.startswith("unimo_kit.eval")))
"""


def test_eval_errors_are_the_encoder_layers_objects():
    assert errors.EvalError is base.EvalError
    for name in ("check_feature_dim", "checkpoint_files", "load_checkpoint_checked"):
        assert getattr(errors, name) is getattr(unimo, name)
    assert (errors.WEIGHTS, errors.CONFIG) == ("model.safetensors", "config.json")


def test_an_error_raised_by_the_encoder_is_caught_as_evals(tmp_path):
    with pytest.raises(errors.EvalError, match=r"checkpoint .*nope does not exist"):
        unimo.UnimoEncoder(tmp_path / "nope", device="cpu")


def test_building_a_unimo_encoder_imports_no_eval_module(tiny_checkpoint):
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(tiny_checkpoint)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout
    assert "refused: checkpoint" in out and "missing does not exist" in out
    assert "dim " in out
    assert out.strip().endswith("eval modules []")
