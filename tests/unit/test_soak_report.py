"""The soak's bounds logic and schedule (tests/soak/report.py): pure, so checked without a run."""

from __future__ import annotations

import pytest

from tests.soak.report import (
    ChurnTally,
    FaultResult,
    JobTally,
    RssSample,
    markdown,
    plan,
    rss_figures,
    violations,
)


def samples(service: str, values: list[tuple[float, float]], pid: int = 10) -> list[RssSample]:
    return [RssSample(t, service, pid, mb) for t, mb in values]


def test_rss_figures_take_the_median_of_each_window_per_service() -> None:
    rows = (samples("gateway", [(5, 90), (10, 100), (15, 400), (20, 100), (95, 109),
                                (100, 500), (105, 108)])
            + samples("infer-people", [(10, 250), (20, 250)], pid=11)
            + samples("infer-people", [(100, 300)], pid=12))
    figs = {f.service: f for f in rss_figures(rows, warm_at=20, end_at=105, window=20)}
    gw = figs["gateway"]
    assert (gw.warm_mb, gw.end_mb, gw.peak_mb) == (100, 109, 500)  # one spike decides nothing
    assert gw.growth == pytest.approx(0.09)
    people = figs["infer-people"]
    assert people.pids == (11, 12)  # a restarted worker is the same service
    assert people.growth == pytest.approx(0.2)


def test_violations_name_each_broken_bound() -> None:
    rss = rss_figures(samples("gateway", [(10, 100), (100, 111)])
                      + samples("websocket", [(10, 100), (100, 110)])
                      + samples("redis-server", [(10, 10), (100, 90)]), 10, 100, window=5)
    faults = [FaultResult("worker SIGKILL", "infer-car", 50, 50, 6.0),
              FaultResult("Redis OOM", "redis-server", 60, 90, None, "maxmemory 1 MB"),
              FaultResult("Redis restart", "redis-server", 70, 72, 10.5)]
    jobs = [JobTally("ja", "done", 80, {"people": 0, "car": 0}, {"people": 0, "car": 0}),
            JobTally("jb", "processing", 80, {"people": 3, "car": 0}, {"people": 0, "car": 1})]
    broken = violations(rss, faults, jobs)
    assert broken == [
        "gateway: RSS grew 11.0% after warm-up (100 -> 111 MB; bound 10%)",
        "Redis OOM redis-server at 60 s: not recovered (maxmemory 1 MB)",
        "Redis restart redis-server at 70 s: recovered after 10.5 s (bound 10 s)",
        "job jb (processing): 3 frame result(s) lost (people 3)",
        "job jb: 1 result(s) duplicated (car 1)",
    ]  # websocket at exactly +10 % holds; Redis grows with data and is not bounded


def test_a_clean_soak_has_no_violations_and_says_pass() -> None:
    rss = rss_figures(samples("gateway", [(10, 100), (100, 101)]), 10, 100)
    faults = [FaultResult("worker SIGKILL", "infer-car", 50, 50, 4.2)]
    jobs = [JobTally("ja", "done", 80, {"people": 0}, {"people": 0})]
    assert violations(rss, faults, jobs) == []
    md = markdown({"minutes": 5, "date": "d", "commit": "c", "machine": "m", "warmup_s": 40},
                  rss, faults, jobs, [ChurnTally("mjpeg", 5, 3, 90, {"HTTP 503": 1}, (61.2,),
                                                   (70.0,))], [])
    assert "**PASS**" in md and "| worker SIGKILL | infer-car | 50 | 50 | 4.2 |" in md
    assert "| mjpeg | 5 | 3 | 90 | HTTP 503 x1 at 61 s; no frame at 70 s |" in md


def test_a_service_without_figures_is_a_violation() -> None:
    rss = rss_figures(samples("gateway", [(10, 100)]), 10, 100, window=5)  # died before the end
    assert violations(rss, [], []) == ["gateway: no RSS figure after warm-up and at the end"]


@pytest.mark.parametrize("minutes", [4, 5, 6, 30])
def test_every_fault_is_in_a_short_run(minutes: float) -> None:
    s = plan(minutes * 60)
    actions = [st.action for st in s.steps]
    assert actions.count("kill-worker") == 5
    assert {"delete-job", "restart-redis", "oom", "submit-doomed-job"} <= set(actions)
    assert actions.index("submit-doomed-job") < actions.index("delete-job")
    faults = [st for st in s.steps if st.action in ("kill-worker", "delete-job",
                                                    "restart-redis", "oom")]
    assert all(0 < st.at < s.duration for st in faults)
    assert 60 <= s.warmup <= 180
    assert {st.arg for st in s.steps if st.action == "kill-worker"} == {"people", "car", "face"}
    if minutes == 30:
        kills = [st.at for st in s.steps if st.action == "kill-worker"]
        assert kills == [300, 600, 900, 1200, 1500] and s.warmup == 180
        assert all(s.warmup < st.at for st in faults)  # a clean baseline in the real soak
        assert next(st.seconds for st in s.steps if st.action == "oom") == 30


def test_too_short_a_soak_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 2 minutes"):
        plan(90)
