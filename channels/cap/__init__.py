"""The CAP channel (OASIS Common Alerting Protocol 1.2): a system-to-system link.

``channel.py`` POSTs a CAP ``<alert>`` (status ``Test``, msgType ``Alert``) to a partner
platform's endpoint; the partner answers with a CAP ``Ack`` whose ``references`` name our
alert, on the web app's ``/hooks/cap/{partner}``, which acknowledges (method ``cap-ack``).
``message.py`` builds and reads CAP: defusedxml (no DTD, no entities) and the OASIS schema
``CAP-v1.2.xsd`` shipped here. ``signing.py`` is the HMAC header; ``fake_partner.py`` a
partner platform for the demo and the tests.
"""
from __future__ import annotations

from channels.cap.channel import CapChannel
from channels.cap.message import CapMessage, CapRefused, build_alert, read_cap

__all__ = ["CapChannel", "CapMessage", "CapRefused", "build_alert", "read_cap"]
