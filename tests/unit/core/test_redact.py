"""URL redaction: one function for every URL shown in logs, errors and API answers."""

from __future__ import annotations

import random
import string

import pytest

from elastic_inference.core.errors import ConfigError
from elastic_inference.core.redact import ambiguous_credentials, redact_url
from elastic_inference.core.redisconn import check_url
from elastic_inference.core.settings import InferSettings, UpSettings, parse_settings


@pytest.mark.parametrize(("text", "expected"), [
    ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    ("redis://:secret@h:6379/0", "redis://:***@h:6379/0"),
    ("rediss://ei-infer:secret@redis.example:6380/1", "rediss://ei-infer:***@redis.example:6380/1"),
    ("redis://:p@ss:w0rd@h/0", "redis://:***@h/0"),  # '@' and ':' inside the password
    ("redis+cluster://ei-infer:secret@h:7000/0", "redis+cluster://ei-infer:***@h:7000/0"),
    ("htp://:secret@h/0", "htp://:***@h/0"),  # a typo in the scheme
    ("redis:/:secret@h", "redis:/:***@h"),  # one slash
    ("redis::secret@h", "redis::***@h"),  # none
    ("rtsp://admin:s3cret@cam.local:554/live", "rtsp://admin:***@cam.local:554/live"),
    ("https://ghp_TOKEN123@host/x.mp4", "https://***@host/x.mp4"),  # a bare token
    ("http://h/x.mjpg?token=abc&res=hd", "http://h/x.mjpg?token=***&res=hd"),
    ("http://h/x?password=p&api_key=k&Signature=s",
     "http://h/x?password=***&api_key=***&Signature=***"),
    ("https://b.s3/v.mp4?X-Amz-Credential=AK%2F1&X-Amz-Signature=ab12&X-Amz-Expires=60",
     "https://b.s3/v.mp4?X-Amz-Credential=***&X-Amz-Signature=***&X-Amz-Expires=60"),
    ("http://h/x;auth=1;mode=2", "http://h/x;auth=***;mode=2"),
    ("https://h/cb#access_token=t0k&state=9", "https://h/cb#access_token=***&state=9"),
    ("http://h/x?pass%77ord=p", "http://h/x?pass%77ord=***"),
    ("http://h/x?%70wd=p", "http://h/x?%70wd=***"),  # the name is percent-decoded to match
    ("rtsp://u:p@h/x#frag", "rtsp://u:***@h/x#frag"),
    ("http://h/a?token=&x=1", "http://h/a?token=&x=1"),  # nothing to hide
    ("video.mp4", "video.mp4"), ("vtest.avi?token=x", "vtest.avi?token=***"),
    ("http://[::1]:8080/x", "http://[::1]:8080/x"), ("https://medium.com/@user/x",
                                                     "https://medium.com/@user/x"),
    ("cannot open redis://:pw@h/0 or rtsp://a:b@c/d?sig=1 (timeout)",
     "cannot open redis://:***@h/0 or rtsp://a:***@c/d?sig=*** (timeout)"),
    ("GET /api/x?token=abc&limit=5 (127.0.0.1)", "GET /api/x?token=***&limit=5 (127.0.0.1)"),
])
def test_redaction_table(text: str, expected: str) -> None:
    assert redact_url(text) == expected
    assert redact_url(expected) == expected  # redacting twice changes nothing


SECRET_CHARS = string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@%"


@pytest.mark.parametrize("seed", range(5))
def test_generated_secrets_never_survive(seed: int) -> None:
    """Random passwords (any character a URL allows in userinfo, '@' and ':' included),
    users, hosts and secret parameters: the secret never appears in what is shown, in every
    URL the validators accept."""
    rng = random.Random(seed)
    for _ in range(400):
        secret = "S" + "".join(rng.choice(SECRET_CHARS) for _ in range(rng.randint(4, 24)))
        user = rng.choice(["", "ei-infer", "admin"])
        host = rng.choice(["h", "redis.example", "10.0.0.7", "[::1]"])
        port = rng.choice(["", ":6379", ":554"])
        scheme = rng.choice(["redis", "rediss", "rtsp", "http", "https", "htp"])
        slashes = rng.choice(["//", "//", "/", ""])
        url = f"{scheme}:{slashes}{user}:{secret}@{host}{port}/0"
        shown = redact_url(url)
        assert secret not in shown and secret[1:] not in shown, (url, shown)
        name = rng.choice(["password", "token", "api_key", "Secret", "auth", "sig", "pwd"])
        value = "V" + "".join(rng.choice(string.ascii_letters + "%/+=") for _ in range(12))
        query = f"https://{host}/v.mp4?a=1&{name}={value}&b=2"
        assert value not in redact_url(query), query


@pytest.mark.parametrize("url", [
    "redis://:se/cret@h/0", "rtsp://admin:pa?ss@cam/live", "http://u:p#w@h/x",
])
def test_urls_whose_password_cannot_be_found_are_refused(url: str) -> None:
    assert "percent-encode" in ambiguous_credentials(url)
    if url.startswith("redis"):
        with pytest.raises(ConfigError) as err:
            check_url(url)
        assert "cret" not in str(err.value)


@pytest.mark.parametrize("url", [
    "htp://:secret@h/0", "redis:/:secret@h", "redis::secret@h", "redis://:secret@", "redis://",
    "redis://:secret@h:port/0", "redis://:secret@h:0/0", "unix://", "http://:secret@h/0",
    "redis://:se/cret@h/0",
    # A cluster has database 0 only; the scheme takes no host-less form either.
    "redis+cluster://:secret@h:7000/1", "redis+cluster://:secret@", "redis+clusters://:secret@h",
])
def test_bad_redis_urls_are_refused_without_echoing_the_password(url: str) -> None:
    for cls, env in ((InferSettings, {"EI_REDIS_URL": url}), (UpSettings, {"EI_REDIS_URL": url})):
        with pytest.raises(ConfigError) as err:
            parse_settings(cls, [], env)
        message = str(err.value)
        assert "EI_REDIS_URL" in message and "secret" not in message and "cret" not in message
    with pytest.raises(ConfigError) as err:
        parse_settings(InferSettings, ["--redis-url", url], {})
    assert "--redis-url" in str(err.value) and "secret" not in str(err.value)


def test_good_redis_urls_pass() -> None:
    for url in ("redis://127.0.0.1:6379/0", "redis://:p%2Fw@h/0", "rediss://u:p@h:6380/1",
                "unix:///run/redis.sock", "redis://h/0?password=x", "REDIS://h",
                "redis+cluster://u:p@h:7000/0", "rediss+cluster://h", "redis+cluster://h/"):
        assert check_url(url) == url


def test_other_invalid_values_are_shown_redacted() -> None:
    with pytest.raises(ConfigError) as err:
        parse_settings(InferSettings, [], {"EI_MODEL_DIR": "x", "EI_BATCH": "rtsp://u:pw@h"})
    assert "EI_BATCH='rtsp://u:***@h' is invalid" in str(err.value)


def test_stream_sources_use_the_same_redaction_and_refuse_ambiguous_credentials() -> None:
    from elastic_inference.services.stream import parse_source

    spec = parse_source("rtsp://admin:s3cret@cam.local:554/live?token=abc#key=k")
    assert spec.public == "rtsp://admin:***@cam.local:554/live?token=***#key=***"
    with pytest.raises(ConfigError) as err:
        parse_source("http://cam/x.mjpg?user=me@home&pass=s3cret")
    assert "percent-encode" in str(err.value) and "s3cret" not in str(err.value)
