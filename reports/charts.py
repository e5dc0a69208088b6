"""Trend charts as inline SVG (pygal), made for print: white, large type, no JavaScript.

Small multiples: one chart for the share of checks answered within target, then one per
channel for its median and 90th percentile response time, each only when it has data (a
month without data is a gap in the line, not a zero). No chart at all is a one-line note in
the report, not a giant empty frame.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

from reports.i18n import ReportTexts


@lru_cache(maxsize=1)
def _print_style() -> Any:
    # pygal is imported when a chart is drawn: a daemon that draws none does not carry it.
    from pygal.style import Style

    return Style(
        background="white",
        plot_background="white",
        foreground="#222",
        foreground_strong="#000",
        foreground_subtle="#666",
        colors=("#1f4e79", "#c55a11", "#548235", "#7030a0", "#bf9000", "#2e75b6"),
        font_family="DejaVu Sans, Arial, sans-serif",
        label_font_size=15,
        major_label_font_size=15,
        legend_font_size=15,
        title_font_size=18,
        value_font_size=13,
        tooltip_font_size=13,
        no_data_font_size=14,
    )


def _chart(kind: Any, title: str, labels: list[str], t: ReportTexts) -> Any:
    chart = kind(
        style=_print_style(),
        width=520,
        height=300,
        js=[],  # self-contained: pygal links its tooltip script from the web otherwise
        disable_xml_declaration=True,
        explicit_size=True,
        show_dots=True,
        dots_size=3,
        legend_at_bottom=True,
        x_label_rotation=0,
        print_values=False,
        title=title,
        no_data_text=t("No data"),
        show_minor_x_labels=False,
    )
    chart.x_labels = labels
    chart.x_labels_major = labels[::3] + ([labels[-1]] if labels and labels[-1] not in labels[::3] else [])
    return chart


def trend_charts(trend: list[Any], t: ReportTexts, month_label: Any) -> list[str]:
    """The charts that have data: answered within target (%), then per channel the median and
    90th percentile response time in minutes."""
    import pygal

    labels = [month_label(p.month, short=True) for p in trend]
    charts: list[str] = []
    if any(p.checks for p in trend):
        rate = _chart(pygal.Line, t("Answered within target (%)"), labels, t)
        rate.range = (0, 100)
        rate.add(t("all channels"), [None if p.in_target_rate is None else round(p.in_target_rate * 100, 1) for p in trend])
        charts.append(str(rate.render(is_unicode=True)))
    for channel in sorted({c for p in trend for c in p.channels}):
        times = _chart(pygal.Line, t("%(channel)s: response time (minutes)", channel=t.name("channel", channel)), labels, t)
        times.add(t("median"), [_minutes(p.channels[channel].median_ms) if channel in p.channels else None for p in trend])
        times.add(t("90th percentile"), [_minutes(p.channels[channel].p90_ms) if channel in p.channels else None
                                         for p in trend], stroke_style={"dasharray": "6, 4"})
        charts.append(str(times.render(is_unicode=True)))
    return charts


def _minutes(ms: int | None) -> float | None:
    return None if ms is None else round(ms / 60000, 1)
