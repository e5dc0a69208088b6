"""The monthly report as an e-mail to the reviewers (built here; sent by the e-mail channel)."""
from __future__ import annotations

from email.message import EmailMessage
from email.utils import make_msgid

from commtest.errors import ConfigError
from commtest.models import MonthlyReport
from commtest.settings import Settings
from reports.i18n import Translator
from reports.monthly import monthly_view
from reports.render import render_html, render_pdf


def build_monthly_email(report: MonthlyReport, settings: Settings, lang: str = "en") -> EmailMessage:
    """A message to ``settings.reviewers`` with a short text, the HTML report and its PDF attached."""
    if not settings.reviewers:
        raise ConfigError("COMMTEST_REVIEWERS: no reviewer addresses configured to send the monthly report to")
    view = monthly_view(report)
    t = Translator(lang, view.figures.timezone)
    totals = view.figures.totals
    html = render_html(view, lang)
    msg = EmailMessage()
    msg["Subject"] = f"{t('monthly_report')} {report.month}" + ("" if view.status == "signed" else f" ({t('draft')})")
    msg["From"] = settings.mail_from
    msg["To"] = ", ".join(settings.reviewers)
    msg["Message-ID"] = make_msgid(domain=settings.mail_from.rsplit("@", 1)[-1])
    # Our own mail must never be taken for a human acknowledgement by a mail reader.
    msg["Auto-Submitted"] = "auto-generated"
    lines = [
        f"{t('monthly_report')} {report.month}",
        "",
        f"{t('runs')}: {len(view.figures.runs)}",
        f"{t('pings')}: {totals.pings}",
        f"{t('ack_rate')}: {t.percent(totals.ack_rate)}",
        f"{t('median')}: {t.seconds(totals.median_ms)}",
        f"{t('p90')}: {t.seconds(totals.p90_ms)}",
        f"{t('breaches')}: {len(view.figures.breaches)}",
        f"{t('action_points')}: {len(view.figures.action_points)}",
        "",
        t("signed", by=view.signed_by, at=t.dt(view.signed_at)) if view.status == "signed" else t("draft"),
    ]
    msg.set_content("\n".join(lines))
    msg.add_alternative(html, subtype="html")
    msg.add_attachment(
        render_pdf(html), maintype="application", subtype="pdf", filename=f"commtest-monthly-{report.month}.pdf"
    )
    return msg
