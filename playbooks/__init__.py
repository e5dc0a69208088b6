"""Playbooks (draaiboeken): schema, loader, message templates, and the shipped *.yaml files."""
from __future__ import annotations
