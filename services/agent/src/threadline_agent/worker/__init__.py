"""The agent's NATS worker, from the queue to the final event.

- ``agent_worker``: the FastStream/NATS wiring: takes a run off the RUNS queue, acks or hands it back;
- ``run_puller``: the pull loop on a graph's consumer, a run asked for as soon as a slot is free;
- ``pipeline``: the steps every run goes through, in order, ending in ``execution`` (the graph run);
- ``publisher``: a run's events on its subject, tokens coalesced and PII redacted (``guardrails``);
- ``answer_cache`` (with ``cache_invalidation``), ``cancellation``: steps of the pipeline with state of their own;
- ``failures``, ``metrics``, ``tracing``: what a run's outcome is, and how it is observed.
"""
