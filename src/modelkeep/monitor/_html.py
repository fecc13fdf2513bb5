"""The drift report as one standalone HTML file: inline SVG plots, no script, no network.

Per feature (and model output): the reference and current distributions on the
reference's bins side by side; with windows, PSI per window for every feature and the
performance metrics per window. Every text from the data is escaped.
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence

from modelkeep._fs import write_file
from modelkeep.monitor._report import DriftReport, FeatureDrift

__all__ = ["render_html", "write_html"]

_REF = "#4C78A8"
_CUR = "#F58518"
_PALETTE = ["#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#B279A2", "#FF9DA6"]
_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em;
color:#222;max-width:1100px}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em}
table{border-collapse:collapse;margin:1em 0}td,th{padding:4px 10px;border-bottom:1px solid #ddd;
text-align:left}th{background:#f4f4f4}
.drift{color:#b00020;font-weight:600}.ok{color:#1b7f3b;font-weight:600}
.minor{color:#b36b00}.card{display:inline-block;vertical-align:top;margin:0 1em 1em 0}
.legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px}
svg text{font-size:11px;fill:#333}
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def histogram_svg(result: FeatureDrift, width: int = 480, height: int = 220) -> str:
    """Grouped bars: reference and current share per bin."""
    bins = result.bins
    n = max(len(bins), 1)
    top = max([*result.reference, *result.current, 1e-9])
    left, bottom, pad = 40, 50, 10
    plot_w, plot_h = width - left - pad, height - bottom - pad
    group = plot_w / n
    bar = max(group * 0.4, 0.5)
    parts = [
        f'<svg class="plot histogram" data-feature="{_e(result.name)}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg" '
        f'role="img"><title>{_e(result.name)}: reference vs current</title>',
        f'<line x1="{left}" y1="{pad + plot_h}" x2="{width - pad}" y2="{pad + plot_h}" '
        'stroke="#999"/>',
        f'<text x="2" y="{pad + 10}">{top:.0%}</text>',
        f'<text x="2" y="{pad + plot_h}">0%</text>',
    ]
    for i, name in enumerate(bins):
        x = left + i * group + group * 0.1
        for offset, shares, color, series in (
            (0.0, result.reference, _REF, "reference"),
            (bar, result.current, _CUR, "current"),
        ):
            share = shares[i] if i < len(shares) else 0.0
            h = plot_h * share / top
            parts.append(
                f'<rect class="bar {series}" x="{x + offset:.1f}" y="{pad + plot_h - h:.1f}" '
                f'width="{bar:.1f}" height="{h:.1f}" fill="{color}">'
                f"<title>{_e(name)}: {series} {share:.1%}</title></rect>"
            )
        if n <= 12 or i % max(n // 8, 1) == 0:
            label = _e(name if len(name) <= 14 else name[:13] + "…")
            parts.append(
                f'<text x="{x:.1f}" y="{pad + plot_h + 12}" '
                f'transform="rotate(30 {x:.1f} {pad + plot_h + 12})">{label}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def lines_svg(
    title: str,
    labels: Sequence[str],
    series: dict[str, list[float | None]],
    *,
    marks: Sequence[float] = (),
    css: str = "lines",
    width: int = 900,
    height: int = 260,
) -> str:
    """One polyline (and dots) per series over the windows; dashed lines at ``marks``."""
    values = [v for s in series.values() for v in s if v is not None]
    top = max([*values, *marks, 1e-9]) * 1.1
    left, bottom, pad, right = 50, 40, 10, 150
    plot_w, plot_h = width - left - right, height - bottom - pad
    n = max(len(labels), 1)
    step = plot_w / max(n - 1, 1)

    def xy(i: int, v: float) -> tuple[float, float]:
        return left + i * step, pad + plot_h - plot_h * v / top

    parts = [
        f'<svg class="plot {css}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg" role="img">'
        f"<title>{_e(title)}</title>",
        f'<line x1="{left}" y1="{pad + plot_h}" x2="{left + plot_w}" y2="{pad + plot_h}" '
        'stroke="#999"/>',
        f'<text x="2" y="{pad + 10}">{top:.2f}</text><text x="2" y="{pad + plot_h}">0</text>',
    ]
    for mark in marks:
        _, y = xy(0, mark)
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" '
            f'stroke="#b00020" stroke-dasharray="4 3"/><text x="{left + plot_w + 4}" '
            f'y="{y + 4:.1f}">{mark:g}</text>'
        )
    for i, label in enumerate(labels):
        if n <= 10 or i % max(n // 8, 1) == 0:
            x, _ = xy(i, 0)
            parts.append(f'<text x="{x:.1f}" y="{pad + plot_h + 14}">{_e(label)}</text>')
    for k, (name, points) in enumerate(series.items()):
        color = _PALETTE[k % len(_PALETTE)]
        coords = [xy(i, v) for i, v in enumerate(points) if v is not None]
        if not coords:
            continue
        path = " ".join(
            f"{'M' if j == 0 else 'L'}{x:.1f},{y:.1f}" for j, (x, y) in enumerate(coords)
        )
        parts.append(
            f'<path class="series" d="{path}" fill="none" stroke="{color}" stroke-width="2">'
            f"<title>{_e(name)}</title></path>"
        )
        for x, y in coords:
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}"/>')
        y = pad + 14 * (k + 1)
        parts.append(
            f'<rect class="swatch" x="{left + plot_w + 8}" y="{y - 9}" width="10" height="10" '
            f'fill="{color}"/><text x="{left + plot_w + 22}" y="{y}">{_e(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _verdict(result: FeatureDrift) -> str:
    if result.drifted:
        return f'<span class="drift">drift: {_e(", ".join(result.kinds))}</span>'
    if result.status == "minor":
        return '<span class="minor">minor</span>'
    return '<span class="ok">stable</span>' if result.status != "no data" else "no data"


def _table(results: Sequence[FeatureDrift]) -> str:
    rows = [
        "<table><tr><th>column</th><th>kind</th><th>PSI</th><th>KS / JS</th>"
        "<th>missing (ref → cur)</th><th>out of range / unseen</th><th>verdict</th></tr>"
    ]
    for r in results:
        other = r.ks if r.kind == "numeric" else r.js
        extra = r.out_of_range if r.kind == "numeric" else r.unseen
        rows.append(
            f"<tr><td>{_e(r.name)}</td><td>{_e(r.kind)}</td><td>{_fmt(r.psi)}</td>"
            f"<td>{_fmt(other)}</td><td>{r.reference_missing:.1%} → {r.current_missing:.1%}</td>"
            f"<td>{'-' if extra is None else f'{extra:.1%}'}</td><td>{_verdict(r)}</td></tr>"
        )
    rows.append("</table>")
    return "".join(rows)


def render_html(report: DriftReport) -> str:
    """The report as a standalone HTML page (inline SVG, no script, no external file)."""
    ref = report.reference
    verdict = (
        '<span class="drift">DRIFT</span>' if report.drifted else '<span class="ok">no drift</span>'
    )
    t = report.thresholds
    body = [
        f"<h1>Drift report: {_e(ref.get('name') or 'reference')} "
        f"{_e(ref.get('version') or '')}</h1>",
        f"<p>{verdict}: {report.drifted_share:.0%} of features drifted (dataset drift at "
        f"{t.dataset:.0%}); {report.rows:,} rows from {_e(report.source)} against a "
        f"reference of {ref.get('rows') or 0:,} rows. PSI thresholds {t.psi_minor} (minor) "
        f"and {t.psi_major} (major).</p>",
        '<p class="legend"><span style="background:' + _REF + '"></span>reference'
        '<span style="background:' + _CUR + '"></span>current</p>',
        "<h2>Features</h2>",
        _table(report.features),
    ]
    if report.outputs:
        body += ["<h2>Model outputs</h2>", _table(report.outputs)]
    if report.performance is not None:
        perf = report.performance
        cells = "".join(
            f"<tr><td>{_e(k)}</td><td>{_fmt(v)}</td><td>{_fmt(perf.reference.get(k))}</td>"
            f"<td>{_fmt(perf.drops.get(k))}</td></tr>"
            for k, v in perf.metrics.items()
        )
        state = '<span class="drift">DROP</span>' if perf.dropped else '<span class="ok">ok</span>'
        body += [
            f"<h2>Performance ({perf.rows:,} labelled rows): {state}</h2>",
            "<table><tr><th>metric</th><th>current</th><th>at training</th><th>drop</th></tr>"
            f"{cells}</table>",
        ]
    if report.windows:
        labels = [(w.start or "").replace("T", " ")[:16] for w in report.windows]
        psi = {
            f.name: [
                next((x.psi for x in w.features if x.name == f.name), None) for w in report.windows
            ]
            for f in report.features
        }
        body += [
            f"<h2>PSI per window ({_e(report.window)})</h2>",
            lines_svg("PSI per window", labels, psi, marks=(t.psi_minor, t.psi_major), css="psi"),
        ]
        if any(w.performance is not None and w.performance.rows for w in report.windows):
            names = list(report.performance.metrics) if report.performance else []
            metrics = {
                n: [
                    w.performance.metrics.get(n) if w.performance is not None else None
                    for w in report.windows
                ]
                for n in names
            }
            body += [
                "<h2>Performance per window</h2>",
                lines_svg("Performance per window", labels, metrics, css="performance"),
            ]
    body.append("<h2>Distributions: reference vs current</h2>")
    for result in [*report.features, *report.outputs]:
        body.append(
            f'<div class="card"><h3>{_e(result.name)} {_verdict(result)}</h3>'
            f"<p>PSI {_fmt(result.psi)}</p>{histogram_svg(result)}</div>"
        )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Drift report: {_e(ref.get('name') or 'reference')}</title>"
        f"<style>{_STYLE}</style></head><body>{''.join(body)}</body></html>\n"
    )


def write_html(report: DriftReport, path: str | os.PathLike[str]) -> None:
    """Write :func:`render_html` of ``report`` to ``path`` (atomically)."""
    from pathlib import Path

    write_file(Path(path), render_html(report).encode("utf-8"))
