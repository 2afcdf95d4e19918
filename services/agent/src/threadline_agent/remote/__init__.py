"""The memory service as LangGraph sees it: a checkpointer (``checkpointer``) and a store (``store``) over gRPC.

Both take the tenant of every call from the run's config, so one client serves every tenant.
"""
