"""A Maildir folder as a source of inbound mail (the demo's local SMTP server writes one).

A message is new until ``mark_processed`` moves it to ``cur/`` with the Seen flag; the
``InboundMessage`` table still guards against counting one twice.
"""
from __future__ import annotations

import mailbox
from pathlib import Path

from channels.email.inbound import RawMail


class MaildirSource:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._box = mailbox.Maildir(self.path, create=True)

    def fetch_new(self) -> list[RawMail]:
        self._box = mailbox.Maildir(self.path, create=True)  # pick up files added since
        out: list[RawMail] = []
        for key in sorted(self._box.keys()):
            msg = self._box.get_message(key)
            if "S" in msg.get_flags():
                continue
            delivered = msg.get("Delivered-To")
            out.append(RawMail(uid=key, data=self._box.get_bytes(key), mailbox=str(self.path),
                               envelope_to=str(delivered) if delivered else None))
        return out

    def mark_processed(self, uid: str) -> None:
        try:
            msg = self._box.get_message(uid)
        except KeyError:
            return
        msg.set_subdir("cur")
        msg.add_flag("S")
        self._box[uid] = msg

    @property
    def supports_idle(self) -> bool:
        return False

    def wait(self, timeout: float) -> bool:
        """Maildir has no push: the caller polls. Returns False (nothing known to be new)."""
        return False

    def close(self) -> None:
        pass
