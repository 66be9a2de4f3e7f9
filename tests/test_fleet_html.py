"""`fleet report --format html` in a real headless browser (Debian's chromium + chromedriver, selenium)."""

from __future__ import annotations

import shutil

import pytest
from cli_helpers import invoke
from fleet_helpers import error, set_driver, write_fleet

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed")
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or DRIVER is None, reason="chromium and chromium-driver not installed"
)
# The colours of the shared stylesheet (envdoctor.htmlpage), as the browser computes them.
RED, AMBER, GREEN = "rgba(207, 34, 46, 1)", "rgba(154, 103, 0, 1)", "rgba(26, 127, 55, 1)"
GREY, CLEAR = "rgba(87, 96, 106, 1)", "rgba(0, 0, 0, 0)"


@pytest.fixture(scope="module")
def browser():
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _page(tmp_path, **fleet) -> tuple[int, str]:
    write_fleet(tmp_path / "fleet", **fleet)
    result = invoke(
        ["fleet", "report", str(tmp_path / "fleet"), "--format", "html", "--expect", "node[001-041]"]
    )
    page = tmp_path / "fleet.html"
    page.write_text(result.stdout)
    return result.exit_code, page.as_uri()


def test_page_shows_verdict_drift_matrix_findings_and_actions(browser, tmp_path):
    from selenium.webdriver.common.by import By

    code, url = _page(
        tmp_path,
        count=40,
        odd={17: set_driver("550.54.15")},
        findings={33: [error("nccl-missing", "no NCCL")]},
    )
    assert code == 1
    browser.get(url)
    assert browser.title == "envdoctor fleet report"
    verdict = browser.find_element(By.CSS_SELECTOR, ".verdict")
    headline = "41 expected, 40 reported, 1 missing, 1 broken, 1 odd: 3 node(s) need attention"
    assert verdict.text == f"✗ {headline}"
    # Rendered colours, not markup: the verdict is red, the odd cell stands out from its row.
    assert verdict.value_of_css_property("border-top-color") == RED
    odd_row = browser.find_element(By.CSS_SELECTOR, 'tr[data-node="node017"]')
    cells = odd_row.find_elements(By.TAG_NAME, "td")
    odd_cells = [c for c in cells if c.value_of_css_property("background-color") != CLEAR]
    assert [c.text for c in odd_cells] == ["550"] and odd_cells[0].is_displayed()
    assert odd_cells[0].value_of_css_property("color") == RED
    assert {c.value_of_css_property("color") for c in cells if c not in odd_cells} == {GREY}
    fold = browser.find_element(By.CSS_SELECTOR, "tr[data-rest]").text
    assert fold == "38 node(s) match the majority: node[001-016,018-032,034-040]"
    findings = browser.find_element(By.CSS_SELECTOR, "#findings tbody").text
    assert "nccl-missing 1 node033 no NCCL" in findings
    badges = browser.find_elements(By.CSS_SELECTOR, "#nodes tbody .badge")
    statuses = {e.text: e.value_of_css_property("background-color") for e in badges}
    assert statuses == {"odd": RED, "broken": RED, "missing": AMBER}
    assert browser.find_element(By.CSS_SELECTOR, "#exclude pre").text == "--exclude=node[017,033,041]"
    assert "state=drain" in browser.find_element(By.CSS_SELECTOR, "#drain pre").text
    # Self-contained: the browser fetched nothing besides the page itself.
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0
    assert len(browser.get_screenshot_as_png()) > 10_000


def test_healthy_fleet_page_is_green_and_lists_no_actions(browser, tmp_path):
    from selenium.webdriver.common.by import By

    code, url = _page(tmp_path, count=41)
    assert code == 0
    browser.get(url)
    verdict = browser.find_element(By.CSS_SELECTOR, ".verdict")
    assert verdict.text.endswith("consistent and healthy")
    assert verdict.value_of_css_property("border-top-color") == GREEN
    assert browser.find_elements(By.ID, "exclude") == [] and browser.find_elements(By.ID, "drain") == []


def test_json_and_html_together_is_bad_usage(tmp_path):
    write_fleet(tmp_path, 2)
    assert invoke(["fleet", "report", str(tmp_path), "--json", "--format", "html"]).exit_code == 2
