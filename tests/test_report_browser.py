"""The report in headless Chromium (Debian's `chromium`): loads cleanly, and the plots are really drawn."""

from __future__ import annotations

import io

import pytest
from browser_cdp import Browser, chromium_path
from report_fixtures import populate
from typer.testing import CliRunner

from sparsetopo.cli import app

pytestmark = pytest.mark.skipif(
    chromium_path() is None,
    reason="chromium is not installed (Debian package `chromium`; scripts/setup-test-extras.sh installs it)",
)


@pytest.fixture(scope="module")
def browser():
    with Browser() as b:
        yield b


def _region_stats(image, rect, dpr):
    """(grey-level standard deviation, share of non-white pixels) of a page region in the screenshot."""
    from PIL import ImageStat

    box = tuple(
        int(round(v * dpr)) for v in (rect["x"], rect["y"], rect["x"] + rect["width"], rect["y"] + rect["height"])
    )
    region = image.crop(box).convert("L")
    std = ImageStat.Stat(region).stddev[0]
    hist = region.histogram()
    inked = 1 - sum(hist[245:]) / max(1, sum(hist))
    return std, inked


def test_harness_sees_console_errors_and_failed_loads(browser, tmp_path):
    page = tmp_path / "bad.html"
    page.write_text(
        '<!DOCTYPE html><html><head><link rel="icon" href="data:,"></head><body>'
        '<img src="missing.png"><script>console.error("broken")</script></body></html>'
    )
    result = browser.load_page(page.as_uri(), "figure.plot")
    assert result.console_errors == ["broken"]
    assert result.log_errors  # the missing image


@pytest.mark.neo4j
def test_report_loads_without_errors_and_shows_plots(store, browser, tmp_path):
    from PIL import Image

    runs = populate(store)
    out = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["report", *runs, "--out", str(out)])
    assert result.exit_code == 0, result.output

    page = browser.load_page(out.as_uri(), "figure.plot")
    assert page.console_errors == [] and page.exceptions == [] and page.log_errors == []
    assert all(u.startswith(("file:", "data:")) for u in page.requests), page.requests

    names = {r["name"] for r in page.rects}
    expected = {f"{r}/{kind}" for r in runs for kind in ("accuracy-density", "churn", "evolution")}
    expected |= {"set-a/network-stats", "set-a/layer-stats", "compare/nnstd", "compare/accuracy"}
    assert expected <= names, expected - names
    assert all(r["loaded"] and r["width"] > 200 and r["height"] > 150 for r in page.rects), page.rects

    shot = Image.open(io.BytesIO(page.screenshot))
    assert shot.height >= max(r["y"] + r["height"] for r in page.rects) * page.device_pixel_ratio - 1
    for rect in page.rects:
        std, inked = _region_stats(shot, rect, page.device_pixel_ratio)
        assert std > 15 and inked > 0.03, (rect["name"], std, inked)
    # The measure tells blank from drawn: the page's left margin holds nothing.
    margin = {"x": 0, "y": 0, "width": 12, "height": max(r["y"] for r in page.rects)}
    std, inked = _region_stats(shot, margin, page.device_pixel_ratio)
    assert std < 1 and inked < 0.001
