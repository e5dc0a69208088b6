"""The web app (``web.app.create_app``): acknowledgement pages, console sign-off, health check."""
from __future__ import annotations
