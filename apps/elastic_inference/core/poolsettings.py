"""``ei stream``'s own options: the pool's (doc/sources.md, "The pool") and how long a URL
source may stay silent; mixins apart from :mod:`.settings` to keep that file a readable size
(``StreamSettings`` is built from them). doc/configuration.md lists them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from . import setting_checks as checks
from .errors import ConfigError
from .framestore import DEFAULT_KEEP
from .netguard import SourcePolicy
from .options import opt
from .tracksettings import SOURCE_ALLOW_HELP

#: The pool's turn: heartbeat, read the sources, renew, release, claim (seconds).
POOL_TURN_S = 1.0
#: Where file sources are read from unless EI_MEDIA_DIR says.
DEFAULT_MEDIA_DIR = Path("media")
#: Options of the single mode that a managed source sets itself; refused with EI_POOL.
SOURCE_FIELDS = ("source", "stream_id", "types", "fps", "max_width")


@dataclass(frozen=True)
class PoolOptions:
    """The stream pool: how many managed sources one replica reads, and where from."""

    pool: bool = opt(False, "read the managed sources (ei:sources, /api/sources) with the other "
                            "pool replicas instead of one EI_SOURCE (doc/sources.md)")
    max_sources: int = opt(16, "pool: most sources this replica reads at once",
                           check=checks.positive)
    media_dir: Path = opt(  # noqa: RUF009 - opt() is a dataclasses.field()
        DEFAULT_MEDIA_DIR, "pool: directory the file sources are read from (names are relative "
                           "to it)")
    source_allow: tuple[str, ...] = opt((), SOURCE_ALLOW_HELP + "; for the pool: which URL "
                                        "sources it opens", check=checks.source_allow)
    lease_seconds: float = opt(5.0, f"pool: seconds a replica's lease on a source lasts unless "
                                    f"renewed (every {POOL_TURN_S:g} s); a dead replica's "
                                    f"sources are taken over after this",
                               check=lambda v: "" if v >= 2 * POOL_TURN_S
                               else f"must be at least {2 * POOL_TURN_S:g} (twice the turn)")
    replica_id: str = opt("", "this replica's id in the leases (default: host name and "
                              "process id)",
                          check=lambda v: "" if not v else checks.stream_id(v))

    def source_policy(self) -> SourcePolicy:
        return SourcePolicy.parse(self.source_allow)

    def check_given(self, given: Mapping[str, str]) -> None:
        """In pool mode each source brings its own source, id, types, fps and width."""
        if not self.pool:
            return
        for name in SOURCE_FIELDS:
            if name in given:
                raise ConfigError(f"{given[name]} is not used with EI_POOL (--pool): each "
                                  f"managed source has its own {name} (doc/sources.md)")


@dataclass(frozen=True)
class CaptureOptions:
    """How long a camera may stay silent, and a frame stored, in either mode."""

    source_timeout: float = opt(5.0, "seconds a URL source may take to open or to deliver a "
                                     "frame before the try fails; three failed reads in a row "
                                     "reopen it (doc/streams.md)",
                                check=lambda v: "" if 0.5 <= v <= 60 else "must be 0.5..60")
    frame_keep: float = opt(DEFAULT_KEEP, "seconds of frames kept in a stream's frame store: "
                                          "a frame still queued or unshown after this is gone "
                                          "(doc/streams.md)",
                            check=lambda v: "" if 0.5 <= v <= 60 else "must be 0.5..60")

    def capture_timeout_ms(self) -> int:
        return int(self.source_timeout * 1000)
