from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from elastic_inference.core.autoscale import Autoscaler, ScalePolicy
from elastic_inference.core.errors import ConfigError
from elastic_inference.core.runtime import ServiceRuntime
from elastic_inference.core.settings import (
    GatewaySettings,
    UpSettings,
    WebsocketSettings,
    parse_settings,
)
from elastic_inference.services.local import (
    HEALTHY_RUN,
    Child,
    LocalSystem,
    WorkerPool,
    check_inputs,
)
from tests.credentials import SECRET_ENV


def test_plan_starts_a_stream_pool_three_workers_track_websocket_and_gateway(
        tmp_path: Path) -> None:
    s = parse_settings(UpSettings, ["--sample-dir", str(tmp_path)], {})
    system = LocalSystem(s, "redis://127.0.0.1:1/0", ServiceRuntime("t"))
    kinds = [c.args[0] for c in system.all_children()]
    assert kinds.count("stream") == 1 and kinds.count("infer") == 3
    assert kinds[:5] == ["stream", "analysis", "track", "websocket", "gateway"]
    pool = system.children[0]
    assert "--pool" in pool.args
    assert pool.args[pool.args.index("--media-dir") + 1] == str(tmp_path)
    assert {c.env["EI_REDIS_URL"] for c in system.all_children()} == {"redis://127.0.0.1:1/0"}
    ports = [c.args[c.args.index("--metrics-port") + 1] for c in system.all_children()]
    assert len(set(ports)) == len(ports)
    assert all(c.metrics_url.endswith(f":{p}/metrics")
               for c, p in zip(system.all_children(), ports, strict=True))


@pytest.mark.parametrize("user", [None, "4"])
def test_services_get_two_heap_arenas_and_workers_the_default(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, user: str | None) -> None:
    if user is None:
        monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    else:
        monkeypatch.setenv("MALLOC_ARENA_MAX", user)
    s = parse_settings(UpSettings, ["--sample-dir", str(tmp_path)], {})
    system = LocalSystem(s, "redis://127.0.0.1:1/0", ServiceRuntime("t"))
    arenas = {c.args[0]: c.env.get("MALLOC_ARENA_MAX") for c in system.all_children()}
    want = user or "2"
    assert {k: v for k, v in arenas.items() if k != "infer"} == {
        "stream": want, "analysis": want, "track": want, "websocket": want, "gateway": want}
    assert arenas["infer"] == user  # glibc's default unless the user set one


def test_a_restarted_child_gets_a_fresh_metrics_port(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    s = parse_settings(UpSettings, ["--sample-dir", str(tmp_path)], {})
    child = LocalSystem(s, "redis://127.0.0.1:1/0", ServiceRuntime("t")).children[0]
    first = child.args[child.args.index("--metrics-port") + 1]
    started: list[list[str]] = []

    class Started:  # records the command instead of starting a process
        pid = 1

        def __init__(self, cmd: list[str], **_: object) -> None:
            started.append(cmd)

    monkeypatch.setattr("subprocess.Popen", Started)
    child.start()  # the first start keeps the planned port
    child.died(0.0)
    child.start()
    ports = [cmd[cmd.index("--metrics-port") + 1] for cmd in started]
    assert ports[0] == first and ports[1] != first
    assert child.metrics_url.endswith(f":{ports[1]}/metrics")


def test_autoscale_plan_starts_min_workers_of_the_chosen_types_only(tmp_path: Path) -> None:
    s = parse_settings(UpSettings, ["--sample-dir", str(tmp_path), "--autoscale",
                                    "--workers", "people", "--sample-streams", "false",
                                    "--min-workers", "2", "--max-workers", "3"], {})
    system = LocalSystem(s, "redis://127.0.0.1:1/0", ServiceRuntime("t"))
    # Without the samples the pool still runs: sources come from the API.
    assert [c.args[0] for c in system.children] == ["stream", "analysis", "track",
                                                    "websocket", "gateway"]
    (pool,) = system.pools
    assert pool.infer_type == "people" and len(pool.workers) == 2
    assert pool.autoscaler is not None and pool.autoscaler.policy.max_replicas == 3
    check_inputs(s)  # no sample streams: no sample videos needed


def test_min_workers_above_max_is_rejected_naming_both(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"EI_MIN_WORKERS.*EI_MAX_WORKERS"):
        parse_settings(UpSettings, ["--min-workers", "5", "--max-workers", "2"], {})


class _FakeWorker:
    """A pool member whose ratio the test sets (the pool only calls these methods)."""

    def __init__(self, ratio: float | None) -> None:
        self.ratio = ratio
        self.started = False
        self.proc = None

    def alive(self) -> bool:
        return True

    def start(self) -> None:
        self.started = True

    def metric(self, name: str) -> float | None:
        assert name == "ei_scale_ratio"
        return self.ratio


def test_pool_sync_starts_workers_the_ratios_ask_for_and_retires_newest_first() -> None:
    made: list[_FakeWorker] = []

    def make(n: int) -> _FakeWorker:
        made.append(_FakeWorker(0.0))
        return made[-1]

    policy = ScalePolicy(min_replicas=1, max_replicas=4, scale_down_window=0.0)
    pool = WorkerPool("people", make, Autoscaler(policy))  # type: ignore[arg-type]
    first = pool.add()
    first.ratio = 2.6  # type: ignore[attr-defined]
    assert pool.sync(now=0.0) == 3
    assert all(w.started for w in made[1:]) and len(made) == 3
    for w in made:
        w.ratio = 0.1
    assert pool.sync(now=1.0) == 1
    assert pool.workers == [first] and set(pool.retiring) == set(made[1:])


def test_missing_samples_are_named(tmp_path: Path) -> None:
    s = parse_settings(UpSettings, ["--sample-dir", str(tmp_path)], {})
    with pytest.raises(ConfigError, match=r"vtest\.avi"):
        check_inputs(s)


@pytest.mark.parametrize(("host", "trusted"), [("127.0.0.1", "127.0.0.1"),
                                               ("0.0.0.0", "127.0.0.1"), ("::", "::1")])
def test_websocket_server_trusts_the_gateway_relay_only(tmp_path: Path, host: str,
                                                        trusted: str) -> None:
    s = parse_settings(UpSettings, ["--sample-dir", str(tmp_path), "--host", host], {})
    system = LocalSystem(s, "redis://127.0.0.1:1/0", ServiceRuntime("t"))
    ws = next(c for c in system.children if c.args[0] == "websocket")
    gw = next(c for c in system.children if c.args[0] == "gateway")
    upstream = gw.args[gw.args.index("--websocket-upstream") + 1]
    ws_settings = parse_settings(WebsocketSettings, ws.args[1:], SECRET_ENV)
    assert ws_settings.trusted_proxies == (trusted,)
    assert f"//{trusted}:" in upstream or f"//[{trusted}]:" in upstream
    assert parse_settings(GatewaySettings, gw.args[1:], SECRET_ENV).trusted_proxies == ()


@pytest.mark.parametrize(("args", "hosts", "origins"), [
    ([], ("localhost", "127.0.0.1", "[::1]"), ()),
    (["--host", "192.168.1.5"], ("localhost", "127.0.0.1", "[::1]", "192.168.1.5"), ()),
    (["--allowed-hosts", "ei.example.com", "--allowed-origins", "https://ei.example.com"],
     ("ei.example.com",), ("https://ei.example.com",)),
])
def test_gateway_and_websocket_server_allow_the_same_hosts(
        tmp_path: Path, args: list[str], hosts: tuple[str, ...],
        origins: tuple[str, ...]) -> None:
    s = parse_settings(UpSettings, ["--sample-dir", str(tmp_path), *args], {})
    system = LocalSystem(s, "redis://127.0.0.1:1/0", ServiceRuntime("t"))
    ws = next(c for c in system.children if c.args[0] == "websocket")
    gw = next(c for c in system.children if c.args[0] == "gateway")
    for child_settings in (parse_settings(WebsocketSettings, ws.args[1:], SECRET_ENV),
                           parse_settings(GatewaySettings, gw.args[1:], SECRET_ENV)):
        assert child_settings.allowed_hosts == hosts
        assert child_settings.allowed_origins == origins


def test_a_wildcard_host_adds_this_machines_names(tmp_path: Path) -> None:
    s = parse_settings(UpSettings, ["--sample-dir", str(tmp_path), "--host", "0.0.0.0"], {})
    gw = next(c for c in LocalSystem(s, "redis://127.0.0.1:1/0", ServiceRuntime("t")).children
              if c.args[0] == "gateway")
    hosts = parse_settings(GatewaySettings, gw.args[1:], SECRET_ENV).allowed_hosts
    assert hosts[:3] == ("localhost", "127.0.0.1", "[::1]")
    assert socket.gethostname().lower() in hosts and "*" not in hosts


class _DeadProc:
    """A child process that has exited (what ``Child.alive`` and the log line read)."""

    returncode = 70

    def poll(self) -> int:
        return self.returncode


class _ScriptedChild(Child):
    """A child that dies as soon as it is started, on the test's clock."""

    clock = 0.0

    def start(self) -> None:
        self.proc = _DeadProc()  # type: ignore[assignment]
        self.started = self.clock


def test_restart_backoff_doubles_while_a_child_keeps_dying_and_resets_after_a_healthy_run(
        tmp_path: Path) -> None:
    s = parse_settings(UpSettings, ["--sample-dir", str(tmp_path), "--sample-streams", "false",
                                    "--workers", "face"], {})
    system = LocalSystem(s, "redis://127.0.0.1:1/0", ServiceRuntime("t"))
    child = _ScriptedChild("analysis", ["analysis", "--metrics-port", "1"], "127.0.0.1")
    system.children, system.pools = [child], []

    def delays(deaths: int, ran: float) -> list[float]:
        """Let the child run ``ran`` s then die, ``deaths`` times; the restart delays."""
        out = []
        for _ in range(deaths):
            _ScriptedChild.clock += ran
            system._supervise(_ScriptedChild.clock)  # notices the death
            out.append(child.next_start - _ScriptedChild.clock)
            _ScriptedChild.clock = child.next_start
            system._supervise(_ScriptedChild.clock)  # restarts it
            assert child.next_start == 0.0 and child.started == _ScriptedChild.clock
        return out

    child.start()
    assert delays(7, ran=0.5) == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert delays(3, ran=HEALTHY_RUN) == [1.0, 1.0, 1.0]  # a healthy run resets the backoff
    assert delays(2, ran=1.0) == [2.0, 4.0]  # and a crash loop after it builds up again
    assert child.restarts == 12


@pytest.mark.parametrize(("allow", "want"), [("", None), ("cam.example.com,10.0.0.0/8",
                                                           "cam.example.com,10.0.0.0/8")])
def test_source_allow_reaches_the_gateway_the_runner_and_the_tracker(
        tmp_path: Path, allow: str, want: str | None) -> None:
    """Job URLs (gateway, runner), source URLs (gateway, stream pool) and webhook URLs
    (gateway, tracker) pass the same list."""
    s = parse_settings(UpSettings, ["--sample-dir", str(tmp_path)], {"EI_SOURCE_ALLOW": allow})
    system = LocalSystem(s, "redis://127.0.0.1:1/0", ServiceRuntime("t"))
    for child in system.children:
        given = (child.args[child.args.index("--source-allow") + 1]
                 if "--source-allow" in child.args else None)
        assert given == (want if child.args[0] in ("stream", "analysis", "gateway", "track")
                         else None), \
            child.args


def test_the_tracker_gets_the_sink_secrets_in_its_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Given ones are handed on; without one, a webhook secret kept in the state directory
    (made once, owner-only), so webhooks are signed out of the box. Never on a command line."""
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))

    def tracker(env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
        s = parse_settings(UpSettings, ["--sample-dir", str(tmp_path)], env)
        [child] = [c for c in LocalSystem(s, "redis://127.0.0.1:1/0",
                                          ServiceRuntime("t")).children if c.args[0] == "track"]
        return child.args, child.env

    secret, mqtt = "w" * 40, "mqtt://ei:pw-of-the-broker@127.0.0.1:1883"
    args, env = tracker({"EI_WEBHOOK_SECRET": secret, "EI_MQTT_URL": mqtt})
    assert (env["EI_WEBHOOK_SECRET"], env["EI_MQTT_URL"]) == (secret, mqtt)
    assert not any(secret in a or "pw-of-the-broker" in a for a in args)
    _, env = tracker({})
    kept = tmp_path / f"ei-up-{os.getuid()}" / "webhook-secret"
    assert env["EI_WEBHOOK_SECRET"] == kept.read_text().strip()
    assert len(env["EI_WEBHOOK_SECRET"]) >= 32 and "EI_MQTT_URL" not in env
    assert kept.stat().st_mode & 0o077 == 0
    assert tracker({})[1]["EI_WEBHOOK_SECRET"] == env["EI_WEBHOOK_SECRET"]  # kept, not remade
