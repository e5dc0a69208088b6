"""The e-mail channel: SMTP sending, inbound classification, IMAP and Maildir sources,
and a local SMTP server for the demo and the tests."""
from __future__ import annotations
