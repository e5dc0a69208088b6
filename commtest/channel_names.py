"""Channel kinds in words: read by officers (ack pages) and by staff (reports, console), so
these few names are in both catalogues (commtest.i18n)."""
from __future__ import annotations

from commtest.i18n import N_

CHANNELS = {
    "email": N_("E-mail"),
    "voice": N_("Telephone"),
    "sms": N_("SMS"),
    "video": N_("Video"),
    "cap": N_("System link (CAP)"),
    "manual": N_("Manual (radio, call back)"),
}
