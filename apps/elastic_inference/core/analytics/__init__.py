"""Analytics: turning a stream's detections into tracks, and tracks into answers.

``rules`` (zones and lines a user draws, as stored and validated), ``geometry`` (the plane
geometry both need), ``tracker`` (stable ids across frames) and ``counting`` (occupancy,
enter/leave, dwell, directional line crossings) are pure: no Redis, no clock of their own,
so a live stream (``ei track``) and an analysis job (frame by frame, lossless) give the same
answers from the same results. doc/analytics.md says what was chosen and measured.
"""
