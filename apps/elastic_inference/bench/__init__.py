"""``ei bench``: how fast the worker is, measured beside the limits that bound it.

Every figure comes from the same machine in the same run, so ratios hold even when the
machine is shared and its absolute speed drifts:

- model only: OpenVINO's own ``benchmark_app`` on the same model, hint and device;
- decode only: JPEG decoding at the worker's reduction, one thread per core;
- worker: a real ``ei infer`` process draining a pre-filled Redis queue of real frames;
- original design: the synchronous loop this product replaced, reproduced in :mod:`.baseline`;
- latency at half and at twice the measured capacity, density of 640x360 streams at 15 fps,
  and each model's INT8 variant against FP32.

:mod:`.frames` makes the frames, :mod:`.probes` the limits, :mod:`.harness` drives workers,
:mod:`.run` puts it together and prints the table.

``ei bench --scale`` (:mod:`.scale`, :mod:`.scaleprobe`) instead runs many managed sources
through the stream pool, workers, websocket and gateway (doc/scaling.md, "150 cameras").
"""
