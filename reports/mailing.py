"""The monthly report as an e-mail to the reviewers (built here; sent by the e-mail channel)."""
from __future__ import annotations

from email.message import EmailMessage
from email.utils import make_msgid

from commtest.errors import ConfigError
from commtest.models import MonthlyReport
from commtest.settings import Settings
from reports.i18n import ReportTexts
from reports.monthly import monthly_view
from reports.render import render_html, render_pdf


def build_monthly_email(report: MonthlyReport, settings: Settings, lang: str = "en") -> EmailMessage:
    """A message to ``settings.reviewers`` with a short text, the HTML report and its PDF attached."""
    if not settings.reviewers:
        raise ConfigError("COMMTEST_REVIEWERS: no reviewer addresses configured to send the monthly report to")
    view = monthly_view(report)
    t = ReportTexts(lang, view.figures.timezone)
    totals = view.figures.totals
    html = render_html(view, lang)
    title = t("Monthly report %(month)s", month=report.month)
    msg = EmailMessage()
    msg["Subject"] = title + ("" if view.status == "signed" else " (" + t("draft") + ")")
    msg["From"] = settings.mail_from
    msg["To"] = ", ".join(settings.reviewers)
    msg["Message-ID"] = make_msgid(domain=settings.mail_from.rsplit("@", 1)[-1])
    # Our own mail must never be taken for a human acknowledgement by a mail reader.
    msg["Auto-Submitted"] = "auto-generated"
    lines = [
        title,
        "",
        f"{t('Tests this month')}: {len(view.figures.runs)}",
        f"{t('Checks')}: {t.number(totals.checks)}",
        f"{t('Answered')}: {t.percent(totals.ack_rate)}",
        f"{t('Answered within target')}: {t.percent(totals.in_target_rate)}",
        f"{t('Median response time')}: {t.duration(totals.median_ms)}",
        f"{t('90th percentile')}: {t.duration(totals.p90_ms)}",
        f"{t('Verdicts that failed')}: {len(view.figures.breaches)}",
        f"{t('Action points')}: {len(view.figures.action_points)}",
        "",
        (t("Signed off by %(name)s on %(when)s.", name=view.signer_name or view.signed_by, when=t.when(view.signed_at))
         if view.status == "signed" else t("Draft: not signed off yet. The figures are recomputed until a reviewer signs them off.")),
    ]
    if view.figures.simulated.checks:
        lines.append(t("SIMULATED — not evidence: %(n)s checks in %(runs)s run(s) of this month were answered by a "
                       "sandbox or a local fake. They are counted apart and appear in none of the figures below.",
                       n=t.number(view.figures.simulated.checks), runs=view.figures.simulated.runs))
    msg.set_content("\n".join(lines))
    msg.add_alternative(html, subtype="html")
    msg.add_attachment(
        render_pdf(html), maintype="application", subtype="pdf", filename=f"commtest-monthly-{report.month}.pdf"
    )
    return msg
