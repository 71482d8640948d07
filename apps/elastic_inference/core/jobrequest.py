"""What an analysis job asks for: ``POST /api/analysis`` bodies read and checked.

:func:`parse_job_request` checks the body's shape and each field's JSON type, :class:`JobRequest`
the value rules; :func:`resolve_source` and :func:`check_known_types` what needs the media
directory or Redis. :mod:`.jobs` stores the jobs.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from . import keys
from .analytics.rules import Rule, rules_from_json
from .errors import InvalidMessage
from .netguard import NO_URLS, URL_SCHEMES, SourcePolicy
from .redact import ambiguous_credentials
from .sourceurl import checked_source_url
from .text import has_control_characters, json_object_body, shown

STATUSES = ("queued", "extracting", "processing", "done", "failed")
MAX_NAME = 120


def resolve_source(source: str, media_dir: Path, policy: SourcePolicy = NO_URLS) -> str:
    """What a runner opens for ``source``: a URL ``policy`` allows, or the file inside
    ``media_dir``.

    Paths are relative to the media directory and may not leave it (``..``, absolute paths and
    symlinks pointing out are refused), so an API client can only name what was put there.
    A URL must pass ``policy`` (EI_SOURCE_ALLOW; by default none does), redirects included
    (:func:`.sourceurl.checked_source_url`, which may read the response head of the URL).
    """
    if not isinstance(source, str) or not source or len(source) > 2048 \
            or has_control_characters(source):
        raise InvalidMessage("source must be a non-empty path or URL without control characters")
    if "://" in source:
        try:
            parts = urlsplit(source)
            host = parts.hostname if parts.port is None or parts.port > 0 else None
        except ValueError:  # a malformed host or a port out of range
            host = None
        if host is None or parts.scheme.lower() not in URL_SCHEMES:
            raise InvalidMessage(f"source URL must be {', '.join(URL_SCHEMES)} with a host")
        problem = ambiguous_credentials(source)
        if problem:
            raise InvalidMessage(f"source URL is refused: {problem}")
        return checked_source_url(source, policy)
    try:
        base = media_dir.resolve()
        path = (base / source).resolve()
        inside = not Path(source).is_absolute() and path.is_relative_to(base)
        is_file = inside and path.is_file()
    except (OSError, ValueError) as exc:  # a name the file system cannot take
        raise InvalidMessage(f"source {source!r} is not a usable path: {exc}") from exc
    if not inside:
        raise InvalidMessage(f"source {source!r} is outside the media directory")
    if not is_file:
        raise InvalidMessage(f"source {source!r} is not a file in the media directory")
    return str(path)


@dataclass(frozen=True)
class JobRequest:
    """What ``POST /api/analysis`` asks for; the value rules are checked here."""

    source: str  # a path relative to the media directory, or a URL
    types: tuple[str, ...]
    frame_step: int = 1
    name: str = ""
    #: Zones and lines, as a stream's (parsed and checked by :func:`.analytics.rules_from_json`).
    rules: tuple[Rule, ...] = ()

    def __post_init__(self) -> None:
        if not self.types:
            raise InvalidMessage("a job needs at least one inference type")
        for t in self.types:
            keys.check_type(t)
        if len(set(self.types)) != len(self.types):
            raise InvalidMessage("inference types repeat")
        if not isinstance(self.frame_step, int) or isinstance(self.frame_step, bool) \
                or not 1 <= self.frame_step <= 10000:
            raise InvalidMessage("frame_step must be an integer in 1..10000")
        if len(self.name) > MAX_NAME or has_control_characters(self.name):
            raise InvalidMessage(f"name must be at most {MAX_NAME} printable characters")


JOB_FIELDS = ("source", "types", "frame_step", "name", "rules")


def parse_job_request(body: bytes, known_labels: Collection[str]) -> JobRequest:
    """The job a ``POST /api/analysis`` body asks for; InvalidMessage naming the problem.
    ``rules`` are checked as a stream's are, against ``known_labels`` (the models' labels).

    Checks the body's shape and each field's JSON type here, and leaves the value rules to
    :class:`JobRequest` (type names, repeats, frame step range, name). Whether the types are
    known and the source exists need Redis and the media directory: see
    :func:`check_known_types` and :func:`resolve_source`.
    """
    data = json_object_body(body, JOB_FIELDS, "a job",
                            '{"source": "video.mp4", "types": ["people"]}')
    source = data.get("source")
    if source is None or source == "":
        raise InvalidMessage("source is required: a path in the media directory or an "
                             "rtsp://, http:// or https:// URL")
    if not isinstance(source, str):
        raise InvalidMessage(f"source must be a string, not {shown(source)}")
    types = data.get("types")
    if not isinstance(types, list) or not types or not all(isinstance(t, str) for t in types):
        raise InvalidMessage(f"types must be a non-empty list of inference type names such as "
                             f'["people"], not {shown(types)}')
    frame_step = data.get("frame_step", 1)
    if isinstance(frame_step, bool) or not isinstance(frame_step, int):
        raise InvalidMessage(f"frame_step must be an integer >= 1 (analyse every n-th frame), "
                             f"not {shown(frame_step)}")
    name = data.get("name", "")
    if not isinstance(name, str):
        raise InvalidMessage(f"name must be a string, not {shown(name)}")
    rules = data.get("rules", [])
    if not isinstance(rules, list):
        raise InvalidMessage(f"rules must be a list of zones and lines, as a stream's rules, "
                             f"not {shown(rules)}")
    return JobRequest(source=source, types=tuple(types), frame_step=frame_step, name=name,
                      rules=rules_from_json({"rules": rules}, known_labels))


def check_known_types(types: Iterable[str], known: Collection[str]) -> None:
    """InvalidMessage unless every type is in ``known`` (built in or has had a worker)."""
    unknown = [t for t in types if t not in known]
    if unknown:
        raise InvalidMessage(f"unknown inference type(s) {', '.join(map(repr, unknown))}: "
                             f"known types are {', '.join(sorted(known))}")
