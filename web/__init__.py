"""The web app: acknowledgement pages and health check (``web.app.create_app``)."""
from __future__ import annotations
