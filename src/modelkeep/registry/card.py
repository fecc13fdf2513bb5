"""Model cards: what a person needs to know before using a version, from its manifest.

The card is built once as neutral sections, then rendered as Markdown or as a standalone
HTML page, so both say the same. Everything taken from the manifest or the index is
escaped for the output format: a description cannot inject markup into either, nor a
control character (an escape sequence for the terminal showing the card).
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field

from modelkeep._text import printable
from modelkeep.manifest import FeatureSpec, Manifest
from modelkeep.registry.records import AliasEvent, ModelVersion

__all__ = ["Section", "build_card", "to_html", "to_markdown"]


@dataclass
class Section:
    """One part of the card: paragraphs, then facts (label, value), then a table."""

    title: str
    paragraphs: list[str] = field(default_factory=list)
    facts: list[tuple[str, str]] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)


def build_card(
    manifest: Manifest,
    version: ModelVersion | None = None,
    history: list[AliasEvent] | None = None,
) -> tuple[str, list[Section]]:
    """The card's title and sections. ``version`` and ``history`` come from a registry;
    a bare bundle has neither."""
    title = f"{version.ref if version else manifest.name}: model card"
    return title, [
        _purpose(manifest),
        _model(manifest, version),
        _features(manifest.features),
        _labels(manifest),
        _metrics(manifest),
        _data(manifest),
        _environment(manifest),
        _artifacts(manifest),
        _lineage(manifest, version),
        _alias_history(version, history or []),
    ]


def _purpose(m: Manifest) -> Section:
    section = Section("Purpose")
    section.paragraphs.append(m.description or "No description was recorded.")
    if m.tags:
        section.facts.append(("tags", ", ".join(m.tags)))
    return section


def _model(m: Manifest, v: ModelVersion | None) -> Section:
    facts = [
        ("name", v.name if v else m.name),
        ("registry version", str(v.version) if v else "not registered"),
        ("bundle version", m.version),
        ("task", m.task),
        ("model type", m.model_type),
        ("created at", m.created_at.isoformat()),
        ("saved with", f"modelkeep {m.modelkeep_version}"),
    ]
    if v is not None:
        facts += [("registered at", v.registered_at), ("registered by", v.registered_by)]
        facts.append(("feature schema version", f"v{v.schema_version}"))
        facts.append(("aliases", ", ".join(v.aliases) or "none"))
    return Section("Model", facts=facts)


def _feature_values(f: FeatureSpec) -> str:
    if f.categories is not None:
        return ", ".join(map(str, f.categories))
    if f.min is not None and f.max is not None:
        return f"{f.min:g} .. {f.max:g}"
    return ""


def _features(features: list[FeatureSpec]) -> Section:
    return Section(
        "Features",
        paragraphs=[f"{len(features)} input column(s), in this order."],
        columns=["#", "name", "type", "nullable", "categories / range"],
        rows=[
            [str(i), f.name, f.dtype, "yes" if f.nullable else "no", _feature_values(f)]
            for i, f in enumerate(features)
        ],
    )


def _labels(m: Manifest) -> Section:
    if not m.target.labels:
        return Section("Labels", paragraphs=["A regression model: outputs are numbers."])
    return Section(
        "Labels",
        columns=["model output", "business label"],
        rows=[[json.dumps(e.value), e.label] for e in m.target.labels],
    )


def _metrics(m: Manifest) -> Section:
    if not m.metrics:
        return Section("Metrics", paragraphs=["No metrics were recorded."])
    return Section(
        "Metrics",
        columns=["metric", "value"],
        rows=[[k, f"{v:.6g}"] for k, v in sorted(m.metrics.items())],
    )


def _data(m: Manifest) -> Section:
    return Section(
        "Data",
        facts=[
            ("data version", m.data.data_version or "not recorded"),
            ("fingerprint", m.data.fingerprint),
            ("rows in the sample", str(m.data.n_rows)),
            ("golden samples", f"{len(m.golden.rows)} rows replayed at every load"),
        ],
    )


def _environment(m: Manifest) -> Section:
    env = m.environment
    return Section(
        "Environment",
        facts=[
            ("python", f"{env.python_implementation} {env.python_version}"),
            ("platform", env.platform),
        ],
        columns=["package", "version"],
        rows=[[name, version] for name, version in sorted(env.packages.items())],
    )


def _artifacts(m: Manifest) -> Section:
    rows = []
    for a in m.artifacts:
        parity = a.details.get("parity")
        shown = json.dumps(parity, sort_keys=True) if parity is not None else "not applicable"
        rows.append([a.path, a.format, f"{a.size:,}", a.sha256, shown])
    return Section(
        "Artifacts and parity",
        columns=["path", "format", "bytes", "sha256", "parity"],
        rows=rows,
    )


def _lineage(m: Manifest, v: ModelVersion | None) -> Section:
    facts = [
        ("parent", (v.parent if v else m.lineage.parent) or "none recorded"),
        ("git commit", m.lineage.git_commit or "not recorded"),
    ]
    if v is not None:
        facts += [("registered from", v.source), ("manifest sha256", v.manifest_sha256)]
    return Section("Lineage", facts=facts)


def _alias_history(v: ModelVersion | None, history: list[AliasEvent]) -> Section:
    if v is None:
        return Section("Alias history", paragraphs=["Not registered: no aliases."])
    events = [e for e in history if v.version in (e.from_version, e.to_version)]
    if not events:
        return Section("Alias history", paragraphs=["No alias has pointed to this version."])
    return Section(
        "Alias history",
        columns=["when", "alias", "from", "to", "by", "reason"],
        rows=[
            [
                e.at,
                e.alias,
                _version_text(e.from_version),
                _version_text(e.to_version),
                e.by,
                e.reason or "",
            ]
            for e in events
        ],
    )


def _version_text(version: int | None) -> str:
    return "none" if version is None else str(version)


# ------------------------------------------------------------------------------- render


def _md(text: str) -> str:
    flat = text.replace("\r", " ").replace("\n", " ")
    return printable(html.escape(flat, quote=False))


def _html(text: str) -> str:
    return printable(html.escape(text))


def _md_cell(text: str) -> str:
    return _md(text).replace("|", "\\|")


def to_markdown(title: str, sections: list[Section]) -> str:
    """The card as Markdown (text escaped so raw HTML in a manifest renders as text)."""
    lines = [f"# {_md(title)}", ""]
    for s in sections:
        lines += [f"## {_md(s.title)}", ""]
        for paragraph in s.paragraphs:
            lines += [_md(paragraph), ""]
        if s.facts:
            lines += [f"- **{_md(k)}**: {_md(v)}" for k, v in s.facts] + [""]
        if s.columns:
            lines.append("| " + " | ".join(_md_cell(c) for c in s.columns) + " |")
            lines.append("|" + "---|" * len(s.columns))
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in s.rows]
            lines.append("")
    return "\n".join(lines)


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 64rem; margin: 2rem auto;
       padding: 0 1rem; color: #1f2328; line-height: 1.45; }
h1 { border-bottom: 1px solid #d0d7de; padding-bottom: .3rem; }
h2 { margin-top: 2rem; }
table { border-collapse: collapse; margin: .5rem 0; }
th, td { border: 1px solid #d0d7de; padding: .25rem .6rem; text-align: left;
         vertical-align: top; word-break: break-all; }
th { background: #f6f8fa; }
dt { font-weight: 600; float: left; clear: left; width: 11rem; }
dd { margin-left: 12rem; }
"""


def to_html(title: str, sections: list[Section]) -> str:
    """The card as one standalone HTML page (inline style, no scripts, all text escaped)."""
    e = _html
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{e(title)}</title>",
        f"<style>{_STYLE}</style>",
        "</head>",
        "<body>",
        f"<h1>{e(title)}</h1>",
    ]
    for s in sections:
        out.append(f"<section><h2>{e(s.title)}</h2>")
        out += [f"<p>{e(p)}</p>" for p in s.paragraphs]
        if s.facts:
            out.append("<dl>")
            out += [f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in s.facts]
            out.append("</dl>")
        if s.columns:
            out.append("<table><thead><tr>")
            out += [f"<th>{e(c)}</th>" for c in s.columns]
            out.append("</tr></thead><tbody>")
            for row in s.rows:
                out.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>")
            out.append("</tbody></table>")
        out.append("</section>")
    out += ["</body>", "</html>", ""]
    return "\n".join(out)
