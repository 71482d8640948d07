from __future__ import annotations

from pathlib import Path

import pytest

from elastic_inference import cli
from elastic_inference.core import settings

REPO = Path(__file__).resolve().parents[2]


def test_every_subcommand_module_has_main() -> None:
    import importlib

    for name, (module, _) in cli.COMMANDS.items():
        assert callable(importlib.import_module(module).main), name


def test_unknown_command_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["frobnicate"]) == 2
    assert "unknown command" in capsys.readouterr().err


def test_config_error_exits_2_naming_the_variable(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("EI_BATCH", "-3")
    assert cli.main(["infer"]) == 2
    assert "EI_BATCH" in capsys.readouterr().err


def test_configuration_doc_lists_every_variable() -> None:
    doc = (REPO / "doc" / "configuration.md").read_text()
    missing = [n for n in settings.known_env_names() if f"`{n}`" not in doc]
    assert not missing, f"doc/configuration.md lacks {missing}"


def test_models_list_shows_types_and_missing_files(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["models", "list", "-d", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "people" in out and "ssd-mobilenetv2-oidv4" in out
    assert "run ei models fetch" in out


def test_models_list_shows_int8_variants(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "blazeface-int8.xml").write_text("<net/>")
    assert cli.main(["models", "list", "-d", str(tmp_path)]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line}
    assert "INT8" in rows["ssd-mobilenetv2-oidv4-int8"]
    assert rows["ssd-mobilenetv2-oidv4-int8"].endswith("run ei models quantize")
    assert rows["blazeface-int8"].endswith("yes")
    assert "FP32" in rows["blazeface"]


def test_models_quantize_refuses_unknown_or_absent_models(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["models", "quantize", "-d", str(tmp_path), "-m", "yolo"]) == 1
    assert "not a built-in FP32 model" in capsys.readouterr().err
    assert cli.main(["models", "quantize", "-d", str(tmp_path), "-m", "all"]) == 1
    assert "ei models fetch" in capsys.readouterr().err
