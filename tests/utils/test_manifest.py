"""The resume manifest: check-or-write, refusals naming what differs, legacy files, atomicity."""

from __future__ import annotations

import json
import os

import pytest

from unimo_kit.utils.manifest import (
    MANIFEST_VERSION,
    Manifest,
    ManifestError,
    ManifestMismatch,
    check_or_write,
    input_changed,
    input_fingerprint,
    manifest_path,
    read_manifest,
    write_manifest,
)


@pytest.fixture
def pairs(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"id": "a"}\n')
    return path


def _manifest(pairs, **settings) -> Manifest:
    return Manifest("test", {"k": 5, **settings}, {"pairs": input_fingerprint(pairs)})


def test_paths():
    assert str(manifest_path("out/r.jsonl")) == os.path.join("out", "r.jsonl.manifest.json")
    assert str(manifest_path("idx", folder=True)) == os.path.join("idx", "manifest.json")


def test_new_output_writes_and_same_settings_resume(tmp_path, pairs):
    path = manifest_path(tmp_path / "out.jsonl")
    assert check_or_write(path, _manifest(pairs), resume=True, has_output=False) is False
    saved = json.loads(path.read_text())
    assert saved["manifest_version"] == MANIFEST_VERSION and saved["settings"] == {"k": 5}
    assert saved["inputs"]["pairs"]["sha256"] == input_fingerprint(pairs)["sha256"]
    assert check_or_write(path, _manifest(pairs), resume=True, has_output=True) is True


def test_other_settings_refused_naming_key_and_flag(tmp_path, pairs):
    path = manifest_path(tmp_path / "out.jsonl")
    check_or_write(path, _manifest(pairs), resume=True, has_output=False)
    with pytest.raises(ManifestMismatch) as err:
        check_or_write(path, _manifest(pairs, k=None), resume=True, has_output=True)
    message = str(err.value)
    assert "out.jsonl was made with other settings" in message
    assert "k: 5 -> null" in message and "--no-resume" in message
    # the refused run left the saved manifest alone; --no-resume starts afresh
    assert read_manifest(path).settings == {"k": 5}
    assert check_or_write(path, _manifest(pairs, k=1), resume=False, has_output=True) is False
    assert read_manifest(path).settings == {"k": 1}


def test_input_compared_by_content_not_time(tmp_path, pairs):
    path = manifest_path(tmp_path / "out.jsonl")
    check_or_write(path, _manifest(pairs), resume=True, has_output=False)
    os.utime(pairs, ns=(1, 1))  # same bytes, other time: resumes
    assert check_or_write(path, _manifest(pairs), resume=True, has_output=True)
    pairs.write_text('{"id": "b"}\n')
    with pytest.raises(ManifestMismatch, match="input pairs changed"):
        check_or_write(path, _manifest(pairs), resume=True, has_output=True)


def test_keys_limit_what_must_match(tmp_path, pairs):
    path = manifest_path(tmp_path / "out.jsonl")
    check_or_write(path, _manifest(pairs, batch=8), resume=True, has_output=False)
    assert check_or_write(path, _manifest(pairs, batch=9), resume=True, has_output=True, keys=["k"])
    assert read_manifest(path).settings["batch"] == 9  # the new run's value is recorded


def test_no_manifest_resumes_unchecked(tmp_path, pairs):
    path = manifest_path(tmp_path / "out.jsonl")
    assert check_or_write(path, _manifest(pairs), resume=True, has_output=True) is True
    assert path.is_file()


def test_legacy_file_is_read_then_replaced(tmp_path, pairs):
    out = tmp_path / "out.jsonl"
    old = tmp_path / "out.jsonl.settings.json"
    old.write_text(json.dumps({"k": 5}))

    def convert(data):
        return Manifest("test", data, {"pairs": input_fingerprint(pairs)})

    with pytest.raises(ManifestMismatch, match="k: 5 -> 2"):
        check_or_write(
            manifest_path(out),
            _manifest(pairs, k=2),
            resume=True,
            has_output=True,
            legacy=(old, convert),
        )
    assert old.is_file()
    assert check_or_write(
        manifest_path(out), _manifest(pairs), resume=True, has_output=True, legacy=(old, convert)
    )
    assert not old.exists() and manifest_path(out).is_file()


def test_unreadable_manifest_is_an_error(tmp_path, pairs):
    path = manifest_path(tmp_path / "out.jsonl")
    path.write_text("{not json")
    with pytest.raises(ManifestError, match="unreadable"):
        check_or_write(path, _manifest(pairs), resume=True, has_output=True)
    path.write_text(json.dumps({"manifest_version": MANIFEST_VERSION + 1}))
    with pytest.raises(ManifestError, match="newer"):
        read_manifest(path)
    path.write_text("[1]")
    with pytest.raises(ManifestError, match="not a resume manifest"):
        read_manifest(path)


def test_write_is_atomic(tmp_path, pairs, monkeypatch):
    path = tmp_path / "m.json"
    write_manifest(path, _manifest(pairs))

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        write_manifest(path, _manifest(pairs, k=9))
    assert read_manifest(path).settings == {"k": 5}
    assert not (tmp_path / "m.json.tmp").exists()


def test_input_changed_fast_path_and_bytes(pairs):
    fingerprint = input_fingerprint(pairs)
    assert not input_changed(fingerprint)
    os.utime(pairs, ns=(5, 5))
    assert not input_changed(fingerprint)  # only the time: the sha256 decides
    pairs.write_text('{"id": "z"}\n')
    assert input_changed(fingerprint)
    pairs.unlink()
    assert input_changed(fingerprint)
