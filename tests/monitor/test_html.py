"""The HTML report opens in headless Chromium and its plots render.

Chromium is Debian's ``chromium`` package; ``scripts/chromium.sh`` installs it when it is
missing (the fixture runs it; a machine where it cannot be installed fails this test).
"""

from __future__ import annotations

import json
import re
import struct
import subprocess
from pathlib import Path

import pandas as pd
import pytest

import modelkeep
from modelkeep import monitor

from .conftest import ROOT, TARGET, fresh

# Measures every plot once the page is laid out and writes the figures into the page, so
# --dump-dom returns them: what Chromium rendered, not only what the file says.
MEASURE = """
<script>
window.addEventListener("load", () => {
  const plots = [...document.querySelectorAll("svg.plot")].map((svg) => {
    const box = svg.getBoundingClientRect();
    const bars = [...svg.querySelectorAll("rect.bar")];
    const paths = [...svg.querySelectorAll("path.series")];
    return {
      kind: svg.getAttribute("class"),
      feature: svg.getAttribute("data-feature"),
      width: box.width,
      height: box.height,
      bars: bars.length,
      drawn_bars: bars.filter((r) => r.getBoundingClientRect().height > 0).length,
      path_length: paths.reduce((sum, p) => sum + p.getTotalLength(), 0),
    };
  });
  const pre = document.createElement("pre");
  pre.id = "measured";
  pre.textContent = JSON.stringify(plots);
  document.body.appendChild(pre);
});
</script>
"""


@pytest.fixture(scope="module")
def chromium() -> str:
    done = subprocess.run(
        [str(ROOT / "scripts" / "chromium.sh")], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        pytest.fail(f"scripts/chromium.sh could not install Chromium: {done.stderr[-2000:]}")
    return done.stdout.strip()


def _chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        *args,
    ]
    # The timeout stops a hung browser; it is not a speed requirement.
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def report(model: modelkeep.Model) -> monitor.DriftReport:
    current = fresh(1800, seed=40)
    current["time"] = pd.date_range("2026-04-01", periods=1800, freq="2min", tz="UTC")
    late = current["time"] >= "2026-04-02"
    current.loc[late, "monthly_charges"] *= 1.3
    current.loc[late, TARGET] = 1 - current.loc[late, TARGET]
    return monitor.drift(model, current, labels=TARGET, window="6h")


def test_the_report_is_one_standalone_file(report: monitor.DriftReport, tmp_path: Path) -> None:
    monitor.write_html(report, tmp_path / "report.html")
    text = (tmp_path / "report.html").read_text("utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", text)  # nothing fetched
    assert "<script" not in text
    assert text.count('class="plot histogram"') == len(report.features) + len(report.outputs)
    assert 'class="plot psi"' in text and 'class="plot performance"' in text
    assert "&lt;script&gt;" in monitor.render_html(
        monitor.DriftReport(**{**report.__dict__, "source": "<script>x</script>"})
    )


def test_the_report_renders_in_headless_chromium(
    chromium: str, report: monitor.DriftReport, tmp_path: Path
) -> None:
    page = tmp_path / "report.html"
    monitor.write_html(report, page)
    measured_page = tmp_path / "measured.html"
    measured_page.write_text(
        page.read_text("utf-8").replace("</body>", MEASURE + "</body>"), "utf-8"
    )
    dumped = _chromium(chromium, tmp_path / "profile-a", "--dump-dom", measured_page.as_uri())
    found = re.search(r'<pre id="measured">(.*?)</pre>', dumped.stdout, re.S)
    assert found is not None, dumped.stderr[-3000:]
    plots = json.loads(found[1].replace("&quot;", '"').replace("&amp;", "&"))
    histograms = [p for p in plots if p["kind"] == "plot histogram"]
    names = [p["feature"] for p in histograms]
    assert names == [f.name for f in [*report.features, *report.outputs]]
    for plot in histograms:
        assert plot["width"] > 100 and plot["height"] > 100, plot
        assert plot["bars"] >= 4 and plot["drawn_bars"] >= 2, plot
    lines = {p["kind"]: p for p in plots if p["kind"] != "plot histogram"}
    assert set(lines) == {"plot psi", "plot performance"}
    for plot in lines.values():
        assert plot["width"] > 300 and plot["path_length"] > 100, plot

    shot = tmp_path / "report.png"
    taken = _chromium(
        chromium,
        tmp_path / "profile-b",
        f"--screenshot={shot}",
        "--window-size=1200,2400",
        page.as_uri(),
    )
    assert shot.exists(), taken.stderr[-3000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1200, 2400)
    # A blank page of this size compresses to a few KB; plots and tables make it larger.
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body></body></html>", "utf-8")
    empty = tmp_path / "blank.png"
    _chromium(
        chromium,
        tmp_path / "profile-c",
        f"--screenshot={empty}",
        "--window-size=1200,2400",
        blank.as_uri(),
    )
    assert len(data) > 5 * len(empty.read_bytes())
