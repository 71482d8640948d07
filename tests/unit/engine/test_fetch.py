"""fetch: hash checking, corrupt caches, user model copying (no network needed)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from elastic_inference.core.errors import FetchError
from elastic_inference.engine import fetch
from elastic_inference.engine.fetch import copy_user_models, fetch_models, main


def _fake_wheel(cache: Path, payload: bytes) -> None:
    with zipfile.ZipFile(cache / f"mediapipe-{fetch.MEDIAPIPE_VERSION}-fake.whl", "w") as zf:
        for member in fetch.WHEEL_MEMBERS.values():
            zf.writestr(member, payload)


def test_hash_mismatch_raises_fetch_error(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    _fake_wheel(cache, b"not the real model")
    with pytest.raises(FetchError, match="SHA-256 mismatch"):
        fetch_models(tmp_path / "models", cache)
    assert not (tmp_path / "models" / "face_detection_short_range.tflite").exists()


def test_corrupt_cached_wheel_is_removed(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    bad = cache / f"mediapipe-{fetch.MEDIAPIPE_VERSION}-fake.whl"
    bad.write_bytes(b"garbage")
    with pytest.raises(FetchError, match="corrupt"):
        fetch_models(tmp_path / "models", cache)
    assert not bad.exists()


def test_missing_tool_is_a_fetch_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(FetchError, match="not installed"):
        fetch._run(["definitely-not-a-command-xyz"], tmp_path, "test")


def test_copy_user_models(tmp_path: Path) -> None:
    user, models = tmp_path / "user", tmp_path / "models"
    user.mkdir()
    models.mkdir()
    (user / "det.xml").write_text("<net/>")
    (user / "det.bin").write_bytes(b"\0" * 8)
    (user / "det.labels").write_text("background\nthing\n")
    (user / "notes.md").write_text("ignored")
    copied = copy_user_models(user, models)
    assert sorted(p.name for p in copied) == ["det.bin", "det.labels", "det.xml"]
    assert (models / "det.bin").read_bytes() == b"\0" * 8
    assert copy_user_models(user, models) == copied  # idempotent
    (user / "face_detection_short_range.tflite").write_bytes(b"x")
    with pytest.raises(FetchError, match="built-in"):
        copy_user_models(user, models)


def test_copy_user_models_needs_a_model(tmp_path: Path) -> None:
    (tmp_path / "labels.txt").write_text("a\n")
    with pytest.raises(FetchError, match="no model file"):
        copy_user_models(tmp_path, tmp_path / "out")
    with pytest.raises(FetchError, match="does not exist"):
        copy_user_models(tmp_path / "nope", tmp_path)


def test_main_reports_failure(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    _fake_wheel(cache, b"x")
    assert main(["-q", "-d", str(tmp_path / "m"), "--cache-dir", str(cache)]) == 1
