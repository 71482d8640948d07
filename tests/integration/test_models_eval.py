"""``ei models eval`` as a real process: real OpenVINO, the real SSD, the committed truth file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from elastic_inference.engine.models import BUILTIN_MODELS

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
TRUTH = REPO / "tests" / "data" / "vtest-truth.json"
SSD = "ssd-mobilenetv2-oidv4"
DEFAULT = "nanodet-g-416"  # the default of people, car and object
MEGAMIND_TRUTH = REPO / "tests" / "data" / "Megamind-truth.json"


def ei_eval(model_dir: Path, video: Path, truth: Path,
            *extra: str, model: str = SSD) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "elastic_inference.cli", "models", "eval", "--model", model,
           "-d", str(model_dir), "--video", str(video), "--truth", str(truth), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)


def test_table_for_the_ssd_on_vtest(model_dir: Path, sample_dir: Path) -> None:
    done = ei_eval(model_dir, sample_dir / "vtest.avi", TRUTH)
    assert done.returncode == 0, done.stderr
    head, note, columns, *rows = done.stdout.strip().splitlines()
    assert f"model {SSD} on vtest.avi" in head
    assert "40 frames" in head
    assert columns.split() == ["threshold", "label", "truth", "found", "tp", "fp", "fn",
                               "precision", "recall"]
    table = {r.split()[1]: r.split() for r in rows}
    # The truth's labels the SSD can report (its "Vehicle" is not a truck), and their sum.
    assert set(table) == {"person", "car", "all"}
    assert note.startswith("not scored") and note.endswith(": truck")
    for label, (threshold, _, truth, found, tp, fp, fn, precision, recall) in table.items():
        assert float(threshold) == BUILTIN_MODELS[SSD].threshold  # the model's own
        assert int(tp) + int(fn) == int(truth), label
        assert int(tp) + int(fp) == int(found), label
        for value in (precision, recall):
            assert value == "-" or 0.0 <= float(value) <= 1.0, (label, value)
    assert int(table["person"][2]) == 237  # every person in the file, ignored ones left out
    # Half the people at least, and few false alarms: a broken decode or a wrong frame
    # (off by one, or scaled boxes) would fall far below.
    assert float(table["person"][8]) >= 0.4
    assert float(table["person"][7]) >= 0.8


def report(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.returncode == 0, done.stderr
    parsed: dict[str, Any] = json.loads(done.stdout)
    return parsed


def test_json_sweep_equals_separate_runs(model_dir: Path, sample_dir: Path) -> None:
    video = sample_dir / "vtest.avi"
    sweep = report(ei_eval(model_dir, video, TRUTH, "--sweep", "0.3:0.5:0.1", "--labels",
                           "person", "--json"))
    assert sweep["frames"] == 40
    assert sweep["labels"] == ["person"]
    assert [r["threshold"] for r in sweep["results"]] == [0.3, 0.4, 0.5]
    recalls = [r["labels"]["person"]["recall"] for r in sweep["results"]]
    assert recalls == sorted(recalls, reverse=True)  # a higher threshold never finds more
    for r in sweep["results"]:
        for key in ("precision", "recall"):
            assert 0.0 <= r["labels"]["person"][key] <= 1.0
    # The sweep runs the model once at 0.3 and re-scores; a run at 0.4 must agree.
    single = report(ei_eval(model_dir, video, TRUTH, "--threshold", "0.4", "--labels", "person",
                            "--json"))
    assert single["results"][0]["labels"] == sweep["results"][1]["labels"]


def test_bad_truth_file_is_a_clear_error(model_dir: Path, sample_dir: Path,
                                         tmp_path: Path) -> None:
    data = json.loads(TRUTH.read_text())
    data["frames"]["20"][1]["box"] = [433, 226, 478]  # a coordinate lost
    bad = tmp_path / "truth.json"
    bad.write_text(json.dumps(data))
    done = ei_eval(model_dir, sample_dir / "vtest.avi", bad)
    assert done.returncode == 1
    assert done.stdout == ""
    assert f"truth file {bad}, frame 20, box 1: box must be four numbers" in done.stderr
    assert "Traceback" not in done.stderr
    # The truth of another video: the frame size gives it away before any figure is printed.
    other = ei_eval(model_dir, sample_dir / "Megamind.avi", TRUTH)
    assert other.returncode == 1
    assert "is for 768x576 frames but" in other.stderr and "720x528" in other.stderr


@pytest.mark.parametrize("model", [DEFAULT, SSD])
@pytest.mark.parametrize(("video", "truth", "frames"), [
    ("vtest.avi", TRUTH, 40), ("Megamind.avi", MEGAMIND_TRUTH, 20)])
def test_default_and_ssd_on_both_sample_videos(model_dir: Path, sample_dir: Path, model: str,
                                               video: str, truth: Path, frames: int) -> None:
    """The figures doc/models.md quotes come from these runs (person, and vehicles on vtest)."""
    got = report(ei_eval(model_dir, sample_dir / video, truth, "--json", model=model))
    assert got["frames"] == frames
    run = got["results"][0]
    person = run["labels"]["person"]
    assert person["truth"] > 0 and person["tp"] + person["fn"] == person["truth"]
    for counts in run["labels"].values():
        for key in ("precision", "recall"):
            assert counts[key] is None or 0.0 <= counts[key] <= 1.0
    if model == DEFAULT and video == "vtest.avi":  # the default sees what the SSD misses
        assert person["recall"] >= 0.85 and person["precision"] >= 0.85, person
        assert run["labels"]["truck"]["recall"] >= 0.9, run["labels"]["truck"]
