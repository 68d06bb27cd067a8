"""The regulator's report and the subject's report, opened in a real headless Chromium.

They must render offline (no scripts, nothing fetched), draw every chart, and
link each finding or line to its proof file. Chromium and ChromeDriver come
from Debian (``chromium``, ``chromium-driver``); `.ci/run` installs them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rempart.audit.mirror import Mirror
from rempart.audit.report import write_report
from rempart.audit.subject_report import MirrorView, build_subject_report
from tests.unit.audit.audit_world import Auditor, Scene, clean_world

GENERATED = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture
def browser() -> Iterator[object]:
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        message = "Debian's chromium and chromium-driver are not installed"
        if os.environ.get("REMPART_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def scene(tmp_path: Path) -> Iterator[Scene]:
    s = clean_world(tmp_path)
    yield s
    s.world.close()


def test_the_regulators_report_renders_every_chart_offline(
    browser: object, scene: Scene, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    auditor = Auditor(scene, tmp_path / "mirror")
    auditor.sync()
    with Mirror(auditor.state, trust=auditor.trust, clock=scene.world.clock) as mirror:
        files = write_report(MirrorView(mirror), tmp_path / "out", generated=GENERATED, mirror_threshold=1)
    driver = browser
    driver.get(files.html.as_uri())  # type: ignore[attr-defined]
    assert driver.find_elements(By.TAG_NAME, "script") == []  # type: ignore[attr-defined]
    charts = driver.find_elements(By.TAG_NAME, "svg")  # type: ignore[attr-defined]
    assert len(charts) >= 9
    drawn_charts = 0
    for chart in charts:
        drawn = chart.find_elements(By.CSS_SELECTOR, "rect, path, polyline, line, circle")
        if drawn:
            drawn_charts += 1
        else:  # a chart with nothing to show says so
            assert chart.find_element(By.TAG_NAME, "text").is_displayed()
            assert "none" in chart.text
        assert chart.size["width"] > 100  # laid out, not collapsed
    assert drawn_charts >= 6
    body = driver.find_element(By.TAG_NAME, "body").text  # type: ignore[attr-defined]
    assert "customer_support" in body
    # Nothing on the page reaches for the network: every resource is the file itself.
    resources = driver.execute_script(  # type: ignore[attr-defined]
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert [r for r in resources if not r.startswith("file:")] == []
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]  # type: ignore[attr-defined]
    assert errors == []


def test_the_subjects_report_links_a_proof_per_line(browser: object, scene: Scene, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    world = scene.world
    subject = "u1"
    world.deployment.log.publish_checkpoint()
    bundle = build_subject_report(
        world.deployment.read_path, world.deployment.records.commitment_key(subject), subject
    )
    written = bundle.write(tmp_path / "subject")
    page = next(p for p in written if p.name == "subject-report.html")
    driver = browser
    driver.get(page.as_uri())  # type: ignore[attr-defined]
    links = driver.find_elements(By.CSS_SELECTOR, "a[href$='.tlog-proof']")  # type: ignore[attr-defined]
    assert len(links) == len(bundle.report.entries) > 0
    for link in links:
        target = Path(link.get_attribute("href").removeprefix("file://"))
        assert target.is_file()
        assert target.read_bytes().startswith(b"c2sp.org/tlog-proof@v1\n")
