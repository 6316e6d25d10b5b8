"""A drift report as one self-contained HTML page: summary on top, a chart per feature.

No script, stylesheet or font is loaded from anywhere: the charts are inline SVG (baseline and
current share per training bin, side by side), so the file opens the same from MLflow's artifact
view, an object store or a mail attachment.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from mlops_drift.report import DriftReport, FeatureDrift

_COLOURS = {"ok": "#2e7d32", "warning": "#ef6c00", "drift": "#c62828", "insufficient_data": "#616161"}
_BASELINE, _CURRENT = "#90a4ae", "#1565c0"

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#212121;max-width:1100px}
h1{font-size:1.4rem;margin-bottom:.2rem} h2{font-size:1.1rem;margin-top:2rem}
.badge{display:inline-block;padding:.15rem .6rem;border-radius:.8rem;color:#fff;font-weight:600}
table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}
td,th{padding:.25rem .6rem;border-bottom:1px solid #e0e0e0;text-align:right}
th:first-child,td:first-child{text-align:left} .muted{color:#757575;font-size:.85rem}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:1rem}
.card{border:1px solid #e0e0e0;border-radius:.4rem;padding:.6rem} .card h3{font-size:.95rem;margin:.1rem 0 .3rem}
.legend span{display:inline-block;width:.8rem;height:.8rem;margin:0 .3rem 0 .8rem;vertical-align:middle}
"""


def _num(value: float | None, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}g}"


def _badge(status: str) -> str:
    colour = _COLOURS.get(status, "#616161")
    return f'<span class="badge" style="background:{colour}">{escape(status.replace("_", " "))}</span>'


def bar_chart(labels: Sequence[str], baseline: Sequence[float], current: Sequence[float],
              width: int = 320, height: int = 150) -> str:
    """Inline SVG: a pair of bars (baseline, current) per label, shares on a common scale."""
    count = max(len(labels), 1)
    top = max([*baseline, *current, 0.01])
    plot_h = height - 28
    slot = (width - 10) / count
    bar = max(slot / 2 - 2, 1.0)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
             f'<line x1="5" y1="{plot_h}" x2="{width - 5}" y2="{plot_h}" stroke="#bdbdbd"/>']
    for i, label in enumerate(labels):
        x = 5 + i * slot
        for j, (value, colour) in enumerate(((baseline[i], _BASELINE), (current[i], _CURRENT))):
            h = (value / top) * (plot_h - 8)
            parts.append(
                f'<rect x="{x + 1 + j * (bar + 1):.1f}" y="{plot_h - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{colour}"><title>{escape(label)}: {"baseline" if j == 0 else "current"} '
                f'{value:.3f}</title></rect>'
            )
        if count <= 12:
            parts.append(f'<text x="{x + slot / 2:.1f}" y="{height - 14}" font-size="9" text-anchor="middle" '
                         f'fill="#616161">{escape(label[:8])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _bin_labels(feature: FeatureDrift) -> list[str]:
    edges = feature.bin_edges
    return [f"{edges[i]:.3g}" for i in range(len(edges) - 1)] or ["all"]


def _feature_card(feature: FeatureDrift) -> str:
    chart = bar_chart(_bin_labels(feature), feature.baseline_shares, feature.current_shares)
    return (
        f'<div class="card"><h3>{escape(feature.name)} {_badge(feature.status)}</h3>{chart}'
        f'<div class="muted">PSI {_num(feature.psi)} · KS {_num(feature.ks_statistic)} '
        f"(p {_num(feature.ks_pvalue, 2)}) · out of range {feature.out_of_range_rate:.1%} · "
        f"missing {feature.missing_rate:.1%} (train {feature.baseline_missing_rate:.1%}) · "
        f"mean {_num(feature.mean)} (train {_num(feature.baseline_mean)})</div></div>"
    )


def render_html(report: DriftReport) -> str:
    """The whole page for ``report``."""
    title = f"Drift report: {report.model} v{report.version}"
    window = (
        f"{report.since:%Y-%m-%d %H:%M}Z – {report.until:%Y-%m-%d %H:%M}Z"
        if report.since is not None and report.until is not None
        else escape(report.source)
    )
    summary_rows = [
        ("Status", _badge(report.status)),
        ("Rows compared", f"{report.rows:,} (minimum {report.min_rows:,})"),
        ("Data", window),
        ("Max feature PSI", _num(report.max_feature_psi)),
        ("Prediction PSI", _num(report.prediction.psi) if report.prediction else "–"),
        ("Thresholds", f"PSI warn {report.thresholds.psi_warn:g}, alert {report.thresholds.psi_alert:g}"),
        ("Drifted features", escape(", ".join(report.drifted_features)) or "none"),
        ("Warned features", escape(", ".join(report.warned_features)) or "none"),
        ("Files read / skipped", f"{report.files_read} / {len(report.files_skipped)}"),
        ("Generated", f"{report.generated_at:%Y-%m-%d %H:%M:%S}Z"),
    ]
    body = [
        f"<h1>{escape(title)}</h1>",
        "<table>" + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in summary_rows) + "</table>",
        *(f'<p class="muted">{escape(note)}</p>' for note in report.notes),
        *(f'<p class="muted">skipped {escape(item)}</p>' for item in report.files_skipped),
    ]
    if report.features:
        ranked = sorted(report.features, key=lambda f: -(f.psi or 0.0))
        body.append("<h2>Features by PSI</h2><table><tr><th>Feature</th><th>Status</th><th>PSI</th><th>KS</th>"
                    "<th>KS p</th><th>Out of range</th><th>Missing</th></tr>")
        body.extend(
            f"<tr><td>{escape(f.name)}</td><td>{_badge(f.status)}</td><td>{_num(f.psi)}</td>"
            f"<td>{_num(f.ks_statistic)}</td><td>{_num(f.ks_pvalue, 2)}</td><td>{f.out_of_range_rate:.1%}</td>"
            f"<td>{f.missing_rate:.1%}</td></tr>"
            for f in ranked
        )
        body.append("</table>")
    if report.prediction is not None:
        p = report.prediction
        body.append(
            f"<h2>Predicted classes {_badge(p.status)}</h2>"
            + bar_chart(p.classes, p.baseline_shares, p.current_shares, width=420)
            + f'<div class="muted">PSI {_num(p.psi)} · chi² {_num(p.chi2_statistic)} (p {_num(p.chi2_pvalue, 2)}) · '
            f"unknown classes {p.unknown_rate:.1%}</div>"
        )
    if report.features:
        body.append(
            '<h2>Distributions</h2><p class="legend muted">per training bin (lower edge shown):'
            f'<span style="background:{_BASELINE}"></span>baseline<span style="background:{_CURRENT}">'
            "</span>current</p>"
            '<div class="grid">' + "".join(_feature_card(f) for f in report.features) + "</div>"
        )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>"
        + "\n".join(body)
        + "</body></html>\n"
    )
