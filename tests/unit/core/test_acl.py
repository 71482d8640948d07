"""The ACL of each component as data, and the aclfile rendered from it (no server here: the
rules are loaded into real servers by tests/integration/test_redis_acl.py)."""

from __future__ import annotations

import hashlib
import io
import re
import subprocess
import sys
from pathlib import Path

import pytest

from elastic_inference.core import acl, keys

REPO = Path(__file__).resolve().parents[3]
PASSWORDS = {c.component: f"{c.component}-password-0123456789" for c in acl.COMPONENTS}


def test_key_patterns_come_from_the_key_functions() -> None:
    assert acl.pattern(keys.queue, "people") == "ei:queue:*"
    assert acl.pattern(keys.job_results, "j0123456789ab", "face") == "ei:job:{*}:results:*"
    # A job id has a fixed length: its pattern matches the record, not its frames.
    assert acl.JOB_RESULTS[0] == "ei:job:{j????????????}"
    with pytest.raises(ValueError, match="not one part"):
        acl.pattern(lambda s: f"ei:{s}:{s}", "x")


def test_every_key_a_component_touches_matches_one_of_its_patterns() -> None:
    """A sample of the real keys of each component against its patterns (Redis' glob)."""
    def allowed(component: str, key: str) -> bool:
        return any(re.fullmatch(p.replace("?", ".").replace("*", ".*"), key)
                   for p in acl.BY_COMPONENT[component].keys)

    job = "j0123456789ab"
    assert allowed("stream", keys.queue_stats("people"))
    assert allowed("stream", keys.stream_info("c"))
    assert allowed("infer", keys.job_results(job, "people")) and allowed("infer", keys.job(job))
    assert not allowed("infer", keys.job_frames(job))
    assert allowed("gateway", keys.rate_limit("jobs", "10.0.0.1"))
    assert allowed("gateway", keys.rules("cam1")) and not allowed("infer", keys.rules("cam1"))
    for key in (keys.events(), keys.event_snapshot("1764670000123-0"), keys.counts("cam1"),
                keys.counts_history("cam1")):
        assert allowed("gateway", key) and not allowed("websocket", key), key
    assert allowed("gateway", "ei:{auth}:session:abc") and allowed("websocket", "ei:{auth}:token:x")
    assert not allowed("websocket", keys.queue("people"))
    assert not allowed("stream", keys.results("c")) and not allowed("stream", keys.auth_users())
    for key in (keys.tracks("c"), keys.track_lease("c"), keys.track_replicas(),
                keys.track_ids("c"), keys.counts("c"), keys.counts_history("c"), keys.events(),
                keys.event_snapshot("1764670000123-0"), keys.out("c"), keys.rules("c")):
        assert allowed("track", key), key
    assert not allowed("track", keys.results("c")) and not allowed("track", keys.queue("people"))
    assert not allowed("gateway", keys.track_lease("c"))
    assert allowed("gateway", keys.sources())
    assert not any(allowed(c, keys.sources()) for c in ("infer", "websocket", "track"))
    for key in (keys.sources(), keys.source_lease("c"), keys.stream_pool()):
        assert allowed("stream", key) and not allowed("track", key), key
    assert not allowed("stream", keys.track_lease("c"))


def test_the_aclfile_keeps_hashes_not_passwords() -> None:
    text = acl.aclfile(PASSWORDS)
    lines = text.splitlines()
    assert lines[0] == "user default reset off"
    assert len(lines) == 1 + len(acl.COMPONENTS)
    for component, password in PASSWORDS.items():
        assert password not in text
        digest = hashlib.sha256(password.encode()).hexdigest()
        [line] = [ln for ln in lines if ln.startswith(f"user ei-{component} ")]
        assert f" on #{digest} " in line and " -@all " in line and " resetchannels " in line
    stream = next(ln for ln in lines if ln.startswith("user ei-stream "))
    assert "+rpush" in stream and "~ei:queue:*" in stream and "+xread" not in stream


def test_only_the_components_asked_for() -> None:
    assert acl.aclfile({"stream": PASSWORDS["stream"]}).count("\nuser ") == 1
    with pytest.raises(ValueError, match=r"unknown component.*nope"):
        acl.aclfile({"nope": PASSWORDS["stream"]})


@pytest.mark.parametrize("password", ["short", "has space in it 123", "x" * 129, "ünïcödé" * 4])
def test_a_bad_password_is_refused_without_being_shown(password: str) -> None:
    with pytest.raises(ValueError) as refused:
        acl.aclfile({"stream": password})
    assert password not in str(refused.value)


def test_url_names_the_user() -> None:
    assert acl.url("rediss://redis:6379/0", "infer", PASSWORDS["infer"]) == \
        f"rediss://ei-infer:{PASSWORDS['infer']}@redis:6379/0"


def test_main_reads_passwords_on_stdin() -> None:
    out = io.StringIO()
    assert acl.main([], io.StringIO("stream " + PASSWORDS["stream"] + "\n\n"), out) == 0
    assert out.getvalue() == acl.aclfile({"stream": PASSWORDS["stream"]})
    assert acl.main([], io.StringIO("stream\n"), io.StringIO()) == 2
    listed = io.StringIO()
    assert acl.main(["--components"], None, listed) == 0
    assert listed.getvalue().splitlines()[0] == "stream ei-stream"
    assert len(listed.getvalue().splitlines()) == len(acl.COMPONENTS)


def test_the_module_runs_on_the_standard_library_alone() -> None:
    """gen-k8s-yaml.sh runs it with a plain python3 (-S: no site-packages, so no redis)."""
    proc = subprocess.run([sys.executable, "-S", "-m", "elastic_inference.core.acl"],
                          input=f"keda {PASSWORDS['keda']}\n", capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO / "apps")}, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("user default reset off\nuser ei-keda ")


def test_the_table_in_doc_security_is_the_current_one() -> None:
    """doc/security.md shows each user's commands and keys as core/acl.py has them."""
    page = (REPO / "doc" / "security.md").read_text()
    for c in acl.COMPONENTS:
        commands = " ".join(c.commands).replace("|", "\\|")
        patterns = " ".join(f"`{k}`" for k in c.keys) or "(none)"
        assert f"| `{c.user}` | {c.does} | {commands} | {patterns} |" in page, c.user
