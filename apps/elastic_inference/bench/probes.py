"""The limits the worker is measured against, and what the bench reads about processes."""

from __future__ import annotations

import logging
import math
import os
import re
import resource
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import EIError
from ..engine.detector import Detector
from ..engine.preprocess import decode_jpeg

log = logging.getLogger(__name__)

_THROUGHPUT_RE = re.compile(r"Throughput:\s+([0-9.]+)\s*FPS")


def benchmark_app() -> str:
    """OpenVINO's ``benchmark_app`` (installed with the openvino wheel, next to python)."""
    found = (shutil.which("benchmark_app", path=str(Path(sys.executable).parent))
             or shutil.which("benchmark_app"))
    if not found:
        raise EIError("benchmark_app not found: it comes with the openvino package "
                      "(pip install 'elastic-inference[infer]')")
    return found


def model_only_fps(model_file: Path, device: str, seconds: int, hint: str = "throughput",
                   precision: str = "", shape: Sequence[int] = ()) -> float:
    """Frames per second ``benchmark_app`` reports for the model alone (random input);
    ``precision`` (``f32``) overrides the device's default inference precision, and ``shape``
    the input's (a batch of frames per request, as the worker runs it)."""
    cmd = [benchmark_app(), "-m", str(model_file), "-d", device, "-hint", hint,
           "-t", str(max(1, seconds)), *(["-infer_precision", precision] if precision else []),
           *(["-shape", "[" + ",".join(map(str, shape)) + "]"] if shape else [])]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120,
                              check=False)
    except subprocess.TimeoutExpired as exc:
        raise EIError(f"benchmark_app did not finish on {model_file}") from exc
    match = _THROUGHPUT_RE.search(done.stdout)
    if done.returncode != 0 or not match:
        tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
        raise EIError(f"benchmark_app failed on {model_file}: {' | '.join(tail)}")
    return float(match.group(1))


@dataclass(frozen=True)
class Rate:
    """A throughput and what each frame cost in CPU time (all threads of this process)."""

    fps: float
    cpu_ms_per_frame: float


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def decode_only(jpegs: Sequence[bytes], reduction: int, threads: int, seconds: float) -> Rate:
    """JPEG decodes per second at ``reduction`` with ``threads`` threads (cv2 frees the GIL)."""
    stop = threading.Event()

    def loop(offset: int) -> int:
        n = 0
        while not stop.is_set():
            decode_jpeg(jpegs[(offset + n) % len(jpegs)], reduction)
            n += 1
        return n

    with ThreadPoolExecutor(threads) as pool:
        cpu, start = _cpu_seconds(), time.perf_counter()
        futures = [pool.submit(loop, i * 7) for i in range(threads)]
        time.sleep(seconds)
        stop.set()
        total = sum(f.result() for f in futures)
        elapsed, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    return Rate(total / elapsed, 1000 * cpu / total)


def detector_only(detector: Detector, size: tuple[int, int], seconds: float) -> Rate:
    """The worker's own compiled model driven from Python on one prepared frame: what
    inference and post-processing cost per frame, without decoding or Redis."""
    image = np.full((size[1], size[0], 3), 96, np.uint8)
    prepared = detector.prepare(image)
    for tag in range(8):  # warm-up
        detector.submit(prepared, tag)
    detector.flush()
    n = 0
    cpu, start = _cpu_seconds(), time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(8):
            detector.submit(prepared, n)
            n += 1
    detector.flush()
    elapsed, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    return Rate(n / elapsed, 1000 * cpu / n)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100), nearest rank; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank]


@dataclass(frozen=True)
class ProcSample:
    """CPU seconds used so far and peak resident memory of one process (Linux /proc)."""

    cpu_seconds: float
    peak_rss_mb: float


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def proc_sample(pid: int) -> ProcSample | None:
    """None when the process is gone or /proc cannot be read (not Linux)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    cpu = _stat_cpu(stat)
    hwm = next((line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")),
               "0")
    return ProcSample(cpu, int(hwm) / 1024)


def _stat_cpu(stat: str) -> float:
    """CPU seconds (user + system) in a /proc ``stat`` line: after the parenthesised command
    name, utime and stime are the 12th and 13th fields."""
    rest = stat.rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / _TICKS


#: :func:`thread_cpu`'s names for the main thread and for threads that kept the process's name
#: (OpenVINO's: they inherit it when it starts them).
MAIN_THREAD, UNNAMED_THREADS = "main", "unnamed"


def thread_cpu(pid: int) -> dict[str, tuple[str, float]]:
    """Each thread of ``pid`` by id: its name (the worker names its own threads,
    ``core.runtime.name_os_thread``) and CPU seconds so far; empty when /proc cannot be read.
    /proc forgets a thread once it ends (its CPU stays in the process's total)."""
    out: dict[str, tuple[str, float]] = {}
    process = ""
    try:
        tids = sorted(os.listdir(f"/proc/{pid}/task"), key=lambda t: t != str(pid))
    except OSError:
        return out
    for tid in tids:  # the main thread first: its name is the process's
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        if tid == str(pid):
            process, name = name, MAIN_THREAD
        elif name == process:
            name = UNNAMED_THREADS
        out[tid] = (name, _stat_cpu(stat))
    return out


def cpu_by_name(before: dict[str, tuple[str, float]], after: dict[str, tuple[str, float]]
                ) -> dict[str, float]:
    """CPU seconds used between two :func:`thread_cpu` samples, summed by thread name (a
    thread started in between counts from zero)."""
    out: dict[str, float] = {}
    for tid, (name, cpu) in after.items():
        out[name] = out.get(name, 0.0) + cpu - before.get(tid, (name, 0.0))[1]
    return out


def cpu_model() -> str:
    """The CPU's model name, for the report."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"
