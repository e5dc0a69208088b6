"""Provider webhooks: one module per provider, each a router the app includes."""
from __future__ import annotations
