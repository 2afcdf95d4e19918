"""The web chat page: static files shipped in the package, no build step, nothing from a CDN.

The page itself holds no secret and needs no credential; it sends the one the user types with
each API call, so auth applies to it exactly as to any other client.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

router = APIRouter(include_in_schema=False)


@router.get("/")
async def home() -> RedirectResponse:
    return RedirectResponse("/chat")


@router.get("/chat")
async def chat() -> FileResponse:
    return FileResponse(STATIC_DIR / "chat.html", headers={"Cache-Control": "no-cache"})


def mount(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
