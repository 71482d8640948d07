"""What ``/api/sources`` checks beyond the body (core/sourcerequest.py): sources by kind, the
masked URL a PUT sends back, the state shown from the stream registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from elastic_inference.core.errors import InvalidMessage
from elastic_inference.core.netguard import NO_URLS, SourcePolicy
from elastic_inference.core.registry import Member
from elastic_inference.core.sourcerequest import (
    check_source,
    keep_stored_url,
    source_answer,
    source_answers,
    source_state,
)
from elastic_inference.core.sources import SourceConfig

SECRET_URL = "rtsp://admin:s3cret@127.0.0.1:554/live?token=t0ken&ch=1"
LOOPBACK = SourcePolicy.parse(["127.0.0.1"])


def config(source: str, stream: str = "gate-1", enabled: bool = True) -> SourceConfig:
    return SourceConfig(id=stream, source=source, types=("people",), enabled=enabled)


@pytest.mark.parametrize("device", ["0", "63", "/dev/video2"])
def test_a_device_is_taken_as_it_is(device: str, tmp_path: Path) -> None:
    """It is read on a replica's host: neither the media directory nor the policy apply."""
    check_source(config(device), tmp_path / "missing", NO_URLS)


def test_a_file_must_be_in_the_media_directory(tmp_path: Path) -> None:
    (tmp_path / "media").mkdir()
    (tmp_path / "media" / "clip.avi").write_bytes(b"x")
    (tmp_path / "outside.avi").write_bytes(b"x")
    check_source(config("clip.avi"), tmp_path / "media", NO_URLS)
    for name, problem in (("../outside.avi", "outside the media directory"),
                          (str(tmp_path / "outside.avi"), "outside the media directory"),
                          ("other.avi", "not a file in the media directory")):
        with pytest.raises(InvalidMessage, match=problem):
            check_source(config(name), tmp_path / "media", NO_URLS)


def test_a_url_passes_the_policy_and_a_refusal_never_shows_its_credentials(
        tmp_path: Path) -> None:
    check_source(config(SECRET_URL), tmp_path, LOOPBACK)
    for url, policy, problem in (
            (SECRET_URL, NO_URLS, "URL sources are off"),
            ("rtsp://admin:s3cret@10.9.9.9/live", LOOPBACK, "not in EI_SOURCE_ALLOW"),
            ("ftp://admin:s3cret@127.0.0.1/x", LOOPBACK, "must be rtsp"),
            ("rtsp://admin:s3/cret@127.0.0.1/x", LOOPBACK, "with a host"),  # '/' unencoded
            ("rtsp://admin:s3cret@127.0.0.1/x@y", LOOPBACK, "percent-encode")):
        with pytest.raises(InvalidMessage, match=problem) as err:
            check_source(config(url), tmp_path, policy)
        assert "s3" not in str(err.value), str(err.value)


def test_a_put_of_the_masked_url_keeps_the_stored_one() -> None:
    stored = config(SECRET_URL)
    shown = stored.to_json(public=True)["source"]
    assert "s3cret" not in shown and "t0ken" not in shown
    assert keep_stored_url(config(shown), stored).source == SECRET_URL
    # Anything else is what the client asks for: another URL, a file, a first write.
    other = "rtsp://admin:***@127.0.0.1:554/other"
    assert keep_stored_url(config(other), stored).source == other
    assert keep_stored_url(config("clip.avi"), stored).source == "clip.avi"
    assert keep_stored_url(config(shown), None).source == shown
    assert keep_stored_url(config("clip.avi"), config("clip.avi")).source == "clip.avi"


def test_state_disabled_pending_or_as_the_reader_reports_it() -> None:
    enabled, disabled = config("0"), config("0", enabled=False)
    live = Member("gate-1", 1.0, {"state": "live", "replica": "pool-a", "reconnects": 2,
                                  "fps": 10.0, "sent_fps": 9.5, "frames": 120})
    assert source_state(enabled, None) == {"state": "pending"}
    assert source_state(disabled, None) == {"state": "disabled"}
    assert source_state(disabled, live) == {"state": "disabled"}
    assert source_state(enabled, live) == {"state": "live", "replica": "pool-a",
                                           "reconnects": 2, "fps": 9.5}
    # A single-mode stream of the same id: no replica; only a target rate.
    single = Member("gate-1", 1.0, {"state": "retrying", "reconnects": 0, "fps": 5})
    assert source_state(enabled, single) == {"state": "retrying", "reconnects": 0, "fps": 5}
    # A source the pool could not open says why.
    failed = Member("gate-1", 1.0, {"state": "failed", "replica": "pool-a", "reconnects": 0,
                                    "error": "vtest.avi is not a file in the media directory"})
    assert source_state(enabled, failed)["error"].startswith("vtest.avi is not a file")


def test_answers_mask_the_url_and_match_members_by_id() -> None:
    a, b = config(SECRET_URL, "a"), config("1", "b")
    members = [Member("b", 1.0, {"state": "connecting"}), Member("z", 1.0, {"state": "live"})]
    answers = source_answers([a, b], members)
    assert [x["state"] for x in answers] == [{"state": "pending"}, {"state": "connecting"}]
    assert "s3cret" not in str(answers) and "t0ken" not in str(answers)
    assert source_answer(a, None)["source"] == answers[0]["source"]
    assert set(answers[0]) == {"id", "source", "kind", "types", "fps", "max_width", "enabled",
                               "updated", "state"}
