"""The gateway's history routes against a real redis-server over real HTTP:
``/api/streams/{id}/results`` and ``/counts``, their ranges, pages and parameter errors.
"""

from __future__ import annotations

import time

import pytest
import redis

from elastic_inference.core import keys
from elastic_inference.core.broker import OutputBroker
from elastic_inference.core.registry import StreamRegistry
from elastic_inference.core.result import Detection, Result
from tests.gateway_app import STREAM_INFO, GatewayThread, H, W, gray_jpeg
from tests.outputs import publish

pytestmark = pytest.mark.integration


def labelled(stream: str, seq: int, labels: list[str], infer_type: str = "people") -> Result:
    return Result(stream=stream, type=infer_type, seq=seq, ts_capture=time.time(),
                  ts_done=time.time(), model="fake", device="CPU", w=W, h=H,
                  detections=tuple(Detection(label, 0.5 + i / 100, (0.1, 0.1, 0.2, 0.2))
                                   for i, label in enumerate(labels)))


def at(client: redis.Redis, stream: str, t: float, result: Result | bytes,
       n: int = 0) -> None:
    """A history entry published at ``t`` (the broker's format, with a chosen entry id)."""
    body = result if isinstance(result, bytes) else result.encode()
    client.xadd(keys.results(stream), {"result": body}, id=f"{int(t * 1000)}-{n}")


def test_results_history_oldest_first_with_label_and_limit(
        gateway: GatewayThread, redis_client: redis.Redis) -> None:
    StreamRegistry(redis_client).beat("cam1", STREAM_INFO)
    broker = OutputBroker(redis_client)
    jpeg = gray_jpeg()
    labels = {1: ["person"], 2: ["person", "car"], 3: [], 4: ["car", "car"], 5: ["person"]}
    published = {}
    middle = 0.0
    for seq, names in labels.items():
        r = labelled("cam1", seq, names)
        published[seq] = r.to_json()
        publish(broker, [(r, jpeg)])
        redis_client.xadd(keys.results("cam1"), {"result": b"not a result"})  # skipped
        time.sleep(0.01)  # a new millisecond for every entry
        if seq == 2:
            middle = time.time()
            time.sleep(0.01)
    before = time.time()
    code, body = gateway.get_json("/api/streams/cam1/results")
    assert code == 200
    assert body["stream"] == "cam1" and body["truncated"] is False
    assert before - 1 < body["until"] <= time.time() and body["since"] == body["until"] - 300
    assert body["results"] == [published[seq] for seq in range(1, 6)]

    def seqs(query: str) -> tuple[list[int], bool]:
        code, body = gateway.get_json("/api/streams/cam1/results?" + query)
        assert code == 200, body
        return [r["seq"] for r in body["results"]], body["truncated"]

    code, body = gateway.get_json("/api/streams/cam1/results?label=car")
    assert [(r["seq"], [d["label"] for d in r["detections"]]) for r in body["results"]] == [
        (2, ["car"]), (4, ["car", "car"])]
    assert body["results"][0]["detections"][0] == published[2]["detections"][1]
    assert seqs("limit=2") == ([4, 5], True)  # the newest ones, still oldest first
    assert seqs("limit=5") == ([1, 2, 3, 4, 5], False)
    assert seqs("limit=2&label=person") == ([2, 5], True)
    assert seqs("label=bus") == ([], False)
    assert seqs(f"since={middle}") == ([3, 4, 5], False)
    assert seqs(f"until={middle}") == ([1, 2], False)
    assert seqs(f"since={middle - 3600}&until={middle - 3000}") == ([], False)


def test_history_of_gone_and_unknown_streams(gateway: GatewayThread,
                                             redis_client: redis.Redis) -> None:
    publish(OutputBroker(redis_client), [(labelled("gone", 1, ["car"]), b"jpeg")])
    StreamRegistry(redis_client).beat("quiet", STREAM_INFO)  # live, nothing inferred yet
    for path in ("results", "counts"):
        code, body = gateway.get_json(f"/api/streams/gone/{path}")
        assert code == 200, body  # history outlives its stream
        code, body = gateway.get_json(f"/api/streams/gone/{path}?since=1&until=2")
        assert code == 200, body  # known even when the range is empty
        code, body = gateway.get_json(f"/api/streams/quiet/{path}")
        assert code == 200 and body["stream"] == "quiet"
        code, body = gateway.get_json(f"/api/streams/nope/{path}")
        assert (code, body) == (404, {"error": "unknown stream 'nope'"})
    assert gateway.get_json("/api/streams/quiet/results")[1]["results"] == []
    assert gateway.get_json("/api/streams/quiet/counts")[1]["series"] == {}


def test_counts_per_bucket_are_the_most_in_one_result(gateway: GatewayThread,
                                                      redis_client: redis.Redis) -> None:
    base = float(int(time.time()) // 10 * 10 - 600)
    at(redis_client, "cam1", base + 1, labelled("cam1", 1, ["car", "car", "person"]))
    at(redis_client, "cam1", base + 1, labelled("cam1", 1, ["face"], "face"), n=1)
    at(redis_client, "cam1", base + 4, labelled("cam1", 2, ["car"]))
    at(redis_client, "cam1", base + 12.5, labelled("cam1", 3, ["person"] * 3))
    at(redis_client, "cam1", base + 13, b'{"v": 1, "broken": true}')  # skipped
    at(redis_client, "cam1", base + 35, labelled("cam1", 4, []))
    at(redis_client, "cam1", base + 61, labelled("cam1", 5, ["car"] * 9))  # after until
    code, body = gateway.get_json(f"/api/streams/cam1/counts?since={base}&until={base + 60}"
                                  "&step=10")
    assert code == 200
    assert (body["stream"], body["since"], body["until"], body["step"]) == (
        "cam1", base, base + 60, 10.0)
    assert body["series"] == {
        "car": [[base, 2], [base + 10, 0], [base + 30, 0]],
        "face": [[base, 1], [base + 10, 0], [base + 30, 0]],
        "person": [[base, 1], [base + 10, 3], [base + 30, 0]],
    }
    code, body = gateway.get_json(f"/api/streams/cam1/counts?since={base}&until={base + 60}"
                                  "&step=60")
    assert body["series"]["car"] == [[base, 2]] and body["series"]["person"] == [[base, 3]]
    code, body = gateway.get_json("/api/streams/cam1/counts")  # the last 5 minutes: none
    assert code == 200 and body["step"] == 10.0 and body["series"] == {}


def test_long_ranges_are_read_page_by_page(gateway: GatewayThread,
                                           redis_client: redis.Redis) -> None:
    base = float(int(time.time()) - 3000)
    pipe = redis_client.pipeline(transaction=False)
    for i in range(2500):  # 2.5 pages; ten results per second
        pipe.xadd(keys.results("cam1"), {"result": labelled("cam1", i, ["car"] * (i % 7)
                                                            ).encode()},
                  id=f"{int(base * 1000) + 100 * i}-0")
    pipe.execute()
    window = f"since={base}&until={base + 300}"
    code, body = gateway.get_json(f"/api/streams/cam1/results?{window}&limit=10000")
    assert code == 200 and body["truncated"] is False
    assert [r["seq"] for r in body["results"]] == list(range(2500))
    code, body = gateway.get_json(f"/api/streams/cam1/results?{window}&limit=2100")
    assert body["truncated"] is True
    assert [r["seq"] for r in body["results"]] == list(range(400, 2500))
    code, body = gateway.get_json(f"/api/streams/cam1/counts?{window}&step=100")
    assert code == 200
    assert body["series"]["car"] == [[base, 6], [base + 100, 6], [base + 200, 6]]


@pytest.mark.parametrize(("query", "name"), [
    ("since=abc", "since"), ("until=abc", "until"), ("since=nan", "since"),
    ("until=inf", "until"), ("since=-1", "since"), ("since=200&until=100", "since"),
    ("since=0&until=86401", "since"),
    ("limit=0", "limit"), ("limit=10001", "limit"), ("limit=2.5", "limit"),
    ("limit=x", "limit"), ("label=" + "x" * 65, "label"), ("label=a%00b", "label"),
    ("label=a%0Ab", "label"), ("label=%7F", "label"), ("label=%C2%85", "label"),
    ("since=%FF", "since"),
])
def test_results_parameter_errors(gateway: GatewayThread, published: bytes, query: str,
                                  name: str) -> None:
    code, body = gateway.get_json(f"/api/streams/cam1/results?{query}")
    assert code == 400 and body["error"].startswith(f"invalid {name}"), body


@pytest.mark.parametrize(("query", "name"), [
    ("step=0", "step"), ("step=0.5", "step"), ("step=3601", "step"), ("step=ten", "step"),
    ("since=0&until=86400&step=60", "step"), ("since=0&until=1001&step=1", "step"),
    ("since=x", "since"), ("until=", None), ("since=5&until=4", "since"),
    ("since=0&until=90000&step=3600", "since"),
])
def test_counts_parameter_errors(gateway: GatewayThread, published: bytes, query: str,
                                 name: str | None) -> None:
    code, body = gateway.get_json(f"/api/streams/cam1/counts?{query}")
    if name is None:  # an empty value means the default
        assert code == 200, body
        return
    assert code == 400 and body["error"].startswith(f"invalid {name}"), body


def test_history_bad_ids(gateway: GatewayThread) -> None:
    for path in ("results", "counts", "mjpeg"):
        code, body = gateway.get_json(f"/api/streams/bad%20id/{path}")
        assert code == 400 and "invalid stream id" in body["error"]
