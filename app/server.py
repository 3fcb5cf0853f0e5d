"""Hosted mode (``make serve``): the atlas as an ASGI app with health routes.

``streamlit run app/server.py`` finds the ``app`` object below and serves
app/main.py through it, adding:
- ``GET /api/health``  liveness (200 while the process answers);
- ``GET /api/ready``   readiness (503 until the warm-up has loaded corpus,
  tokenizers, MiniLM and the LLM; then 200), with device, queue lengths and memory;
- ``GET /api/jobs``    the scheduler's recent heavy jobs (who ran when).
The warm-up starts in a background thread when the server starts.
"""

import sys
from contextlib import asynccontextmanager
from pathlib import Path

import streamlit as st
from starlette.responses import JSONResponse
from starlette.routing import Route

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# The project's own modules come after the sys.path insert above: they need the repo root on it.
from core.runtime import health
from core.runtime.device import pick_device


async def _health(request):
    return JSONResponse(health.liveness())


async def _ready(request):
    state = health.readiness()
    return JSONResponse(state, status_code=200 if state["ready"] else 503)


async def _jobs(request):
    return JSONResponse({"jobs": health.jobs()})


@asynccontextmanager
async def _lifespan(_app):
    health.start_warm_up(health.default_warm_up_tasks(str(pick_device())))
    yield {}


app = st.App(
    "main.py",
    routes=[Route("/api/health", _health), Route("/api/ready", _ready), Route("/api/jobs", _jobs)],
    lifespan=_lifespan,
)
