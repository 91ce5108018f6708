"""lazy_exports: the packages' names imported on first use, then kept."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_lazy_exports_import_on_first_use_and_keep_the_name():
    code = (
        "import sys, unimo_kit.rewrite as r\n"
        "assert 'unimo_kit.rewrite.pipeline' not in sys.modules\n"
        "config = r.RewriteConfig\n"
        "assert 'unimo_kit.rewrite.pipeline' in sys.modules\n"
        "assert vars(r)['RewriteConfig'] is config and 'RewriteConfig' in dir(r)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_an_unknown_name_is_an_attribute_error():
    import unimo_kit.generators

    with pytest.raises(AttributeError, match=r"'unimo_kit\.generators' has no attribute 'nope'"):
        _ = unimo_kit.generators.nope
