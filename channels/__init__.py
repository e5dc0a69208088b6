"""Channels: one kind per module or sub-package (email, voice, sms, video, cap, manual).

A channel sends one ping and later reports what happened. It never writes the
database and never schedules anything: the run engine records (CONVENTIONS.md rule 4).
"""
from __future__ import annotations

from channels.base import Channel, ChannelReport, Notice, NoticeSender, OutgoingPing, SendResult

__all__ = ["Channel", "ChannelReport", "Notice", "NoticeSender", "OutgoingPing", "SendResult"]
