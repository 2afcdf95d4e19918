"""The LangGraph Platform API under ``/langgraph``, so the official ``langgraph-sdk`` works against Threadline.

``get_client(url="http://<gateway>/langgraph")`` then finds assistants, threads and runs with the same
routes, JSON shapes and SSE framing as a LangGraph server's. Authentication and rate limits are the
gateway's own (the SDK's ``api_key`` travels as ``X-API-Key``).
"""

from fastapi import APIRouter

from threadline_gateway.langgraph_compat import assistants, crons, runs, store, threads

router = APIRouter(prefix="/langgraph", tags=["langgraph"])
router.include_router(assistants.router)
router.include_router(threads.router)
router.include_router(crons.router)  # before runs': /runs/crons/... is not a run
router.include_router(runs.router)
router.include_router(store.router)
