"""``reuse_frame_memory``: frame-sized buffers come from the heap and stay there once freed.

Without it glibc maps each block over 128 KB afresh and trims freed heap back to the kernel,
so the worker's decode threads page-faulted about 130 times a frame (doc/benchmarks.md). Each
case runs in a child process: the setting is process-wide, and a fresh process shows glibc's
defaults. Where a block lives is read from ``/proc/self/maps``: deterministic, unlike counting
page faults, which depends on how the threads interleave.
"""

from __future__ import annotations

import json
import subprocess
import sys

CHILD = """
import json, sys
import numpy as np
from elastic_inference.engine.preprocess import reuse_frame_memory

def heap():  # numpy's huge-page advice can split the heap into several mappings
    spans = [[int(x, 16) for x in line.split()[0].split("-")]
             for line in open("/proc/self/maps") if line.rstrip().endswith("[heap]")]
    return min(s[0] for s in spans), max(s[1] for s in spans)

reused = sys.argv[1] == "reuse" and reuse_frame_memory()
image = np.empty((720, 1280, 3), np.uint8)  # a decoded 1280x720 frame
image.fill(7)
address = image.ctypes.data
lo, hi = heap()
in_heap = lo <= address < hi
big = np.ones(20 << 20, np.uint8)  # 20 MB at the top of the heap, then freed
del big
after_lo, after_hi = heap()
print(json.dumps({"reused": reused, "in_heap": in_heap, "heap_after": after_hi - after_lo,
                  "heap_before": hi - lo}))
"""


def run_child(mode: str) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True,
                         timeout=60, check=True)
    result: dict[str, object] = json.loads(out.stdout)
    return result


def test_glibc_maps_a_frame_afresh_by_default() -> None:
    plain = run_child("plain")
    assert plain["reused"] is False
    assert plain["in_heap"] is False  # over the default 128 KB threshold: its own mapping


def test_frame_buffers_come_from_the_heap_and_are_not_trimmed() -> None:
    reuse = run_child("reuse")
    assert reuse["reused"] is True, "glibc mallopt refused the thresholds"
    assert reuse["in_heap"] is True
    # The freed 20 MB stays in the heap for the next frames instead of going back.
    assert isinstance(reuse["heap_after"], int) and isinstance(reuse["heap_before"], int)
    assert reuse["heap_after"] >= reuse["heap_before"] + (20 << 20)
