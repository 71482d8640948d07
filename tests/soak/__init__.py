"""The soak: ``ei up`` for a long time under client churn and injected faults (``make soak``).

A test tool, not product code, so it lives beside the other tests and reuses their helpers
(``tests.processes``, ``tests.redis_server``); pytest does not collect it (no ``test_`` files).
``report`` holds the pure parts (schedule, figures, bounds, markdown), ``system`` the processes,
``churn`` the clients and jobs, ``run`` the timeline; doc/reliability.md describes the run.
"""
