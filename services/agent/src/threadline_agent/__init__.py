"""Threadline's agent service: a NATS worker that answers runs with LangGraph graphs.

- ``worker/``: the worker itself: NATS wiring, the steps every run goes through, its events;
- ``graphs/``: what answers: the assistants' graphs, the chat model and the tools;
- ``remote/``: the memory service as LangGraph's checkpointer and store, over gRPC;
- ``settings``, ``resilience`` (retries and breakers) and ``liveness`` (the probe) serve all three.
"""
