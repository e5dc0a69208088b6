"""Trend charts as inline SVG (pygal), made for print: white, large type, no JavaScript."""
from __future__ import annotations

from typing import Any

import pygal
from pygal.style import Style

from reports.i18n import Translator

_PRINT = Style(
    background="white",
    plot_background="white",
    foreground="#222",
    foreground_strong="#000",
    foreground_subtle="#666",
    colors=("#1f4e79", "#c55a11", "#548235", "#7030a0", "#bf9000", "#2e75b6"),
    font_family="DejaVu Sans, Arial, sans-serif",
    label_font_size=13,
    major_label_font_size=13,
    legend_font_size=13,
    title_font_size=16,
    value_font_size=12,
    tooltip_font_size=12,
)


def _chart(kind: Any, title: str, labels: list[str]) -> Any:
    chart = kind(
        style=_PRINT,
        width=800,
        height=320,
        js=[],  # self-contained: pygal links its tooltip script from the web otherwise
        disable_xml_declaration=True,
        explicit_size=True,
        show_dots=True,
        dots_size=3,
        legend_at_bottom=True,
        x_label_rotation=0,
        print_values=False,
        title=title,
    )
    chart.x_labels = labels
    return chart


def trend_charts(trend: list[Any], t: Translator) -> list[str]:
    """Two charts: acknowledgement rate per month; median and p90 response time per channel."""
    labels = [p.month for p in trend]
    rate = _chart(pygal.Line, t("ack_rate_chart"), labels)
    rate.range = (0, 100)
    rate.add(t("ack_rate"), [None if p.ack_rate is None else round(p.ack_rate * 100, 1) for p in trend])
    times = _chart(pygal.Line, f"{t('median_chart')} / {t('p90')}", labels)
    channels = sorted({c for p in trend for c in p.channels})
    for channel in channels:
        times.add(
            f"{channel} {t('median')}",
            [_s(p.channels[channel].median_ms) if channel in p.channels else None for p in trend],
        )
        times.add(
            f"{channel} p90",
            [_s(p.channels[channel].p90_ms) if channel in p.channels else None for p in trend],
            stroke_style={"dasharray": "6, 4"},
        )
    if not channels:
        times.add(t("median"), [None for _ in trend])
    return [str(rate.render(is_unicode=True)), str(times.render(is_unicode=True))]


def _s(ms: int | None) -> float | None:
    return None if ms is None else round(ms / 1000, 1)
