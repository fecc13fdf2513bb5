"""Model cards: every section, in Markdown and HTML, with manifest text escaped."""

from __future__ import annotations

from pathlib import Path

from modelkeep.registry import Registry

from .helpers import save_tiny

HOSTILE = "Scores churn <script>alert('x')</script> & <b>more</b> | piped"


def _registered(registry: Registry, tmp_path: Path) -> str:
    bundle = save_tiny(tmp_path / "b", description=HOSTILE, tags=["churn"], data_version="q1")
    registry.register(bundle, registered_by="alice")
    registry.register(bundle, registered_by="bob", parent="tiny:1")
    registry.set_alias("tiny", "production", 2, reason="<i>better</i>", by="carol")
    return "tiny@production"


def test_markdown_card_has_every_section(registry: Registry, tmp_path: Path) -> None:
    card = registry.card(_registered(registry, tmp_path))
    assert card.startswith("# tiny:2: model card\n")
    headings = [line for line in card.splitlines() if line.startswith("## ")]
    assert headings == [
        "## Purpose",
        "## Model",
        "## Features",
        "## Labels",
        "## Metrics",
        "## Data",
        "## Environment",
        "## Artifacts and parity",
        "## Lineage",
        "## Alias history",
    ]
    for expected in (
        "- **registered by**: bob",
        "- **aliases**: production",
        "| 0 | a | float | no | ",
        "| 1 | Yes |",
        "| f1 | 0.8 |",
        "- **data version**: q1",
        "| scikit-learn | ",
        "| artifacts/pipeline.skops | skops | ",
        "- **parent**: tiny:1",
        "| production | none | 2 | carol | &lt;i&gt;better&lt;/i&gt; |",
    ):
        assert expected in card, expected
    # Raw HTML from the manifest is shown as text, and cannot break a table either.
    assert "<script>" not in card and "<b>" not in card
    assert "&lt;script&gt;alert('x')&lt;/script&gt; &amp; &lt;b&gt;more&lt;/b&gt; | piped" in card


def test_html_card_is_standalone_and_escapes_everything(registry: Registry, tmp_path: Path) -> None:
    page = registry.card(_registered(registry, tmp_path), html=True)
    assert page.startswith('<!DOCTYPE html>\n<html lang="en">')
    assert page.rstrip().endswith("</html>")
    assert "<script" not in page and "<b>" not in page and "<i>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &lt;b&gt;more&lt;/b&gt;" in page
    assert "&lt;i&gt;better&lt;/i&gt;" in page
    assert "http" not in page.replace('lang="en"', "")  # nothing fetched from elsewhere
    for title in ("Features", "Labels", "Metrics", "Lineage", "Alias history"):
        assert f"<h2>{title}</h2>" in page


def test_card_of_a_version_no_alias_touched(registry: Registry, tiny_bundle: Path) -> None:
    registry.register(tiny_bundle)
    card = registry.card("tiny:1")
    assert "No alias has pointed to this version." in card
    assert "- **parent**: none recorded" in card
