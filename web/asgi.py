"""The web app as an ASGI factory, for the worker processes of ``COMMTEST_WEB_WORKERS`` > 1.

``commtest daemon`` starts ``uvicorn web.asgi:create --factory --workers N`` beside itself:
each worker reads the same settings (environment and ``COMMTEST_CONFIG``) and opens its own
database engine. The scheduler stays in the daemon alone; a worker only serves pages, webhooks
and the API, so any number of them can answer acknowledgements at once.
"""
from __future__ import annotations

import logging

from fastapi import FastAPI

from commtest.clock import SystemClock
from commtest.db import make_engine
from commtest.settings import load_settings
from web.app import create_app


def create() -> FastAPI:
    settings = load_settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return create_app(settings, make_engine(settings.database_url), SystemClock())
