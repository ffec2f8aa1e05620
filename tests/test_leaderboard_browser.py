"""The leaderboard page in a real browser: headless Chromium (Debian ``chromium`` + ``chromium-driver``)
driven by selenium loads ``index.html`` from ``file://``, sorts by clicking headers, and logs no JavaScript
error. Skipped, with the reason, only where selenium or Chromium is missing or Chromium cannot start.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from laionet_bench.leaderboard import build_leaderboard, write_leaderboard
from laionet_bench.leaderboard.render import DISPLAY_COLUMNS

from .fakes.results import make_result

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed: pip install -e '.[test]'")

CHROMIUM_OPTIONS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage")
HEADERS = {col: header for col, header, _ in DISPLAY_COLUMNS}


def _binaries() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("Chromium is not installed: apt-get install -y --no-install-recommends chromium chromium-driver")
    return chromium, driver


@pytest.fixture
def browser(tmp_path):
    """Headless Chromium with a throw-away profile and the console log kept; quit in teardown."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = _binaries()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*CHROMIUM_OPTIONS, f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,800"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        driver = webdriver.Chrome(service=Service(driver_path), options=options)
    except WebDriverException as exc:
        pytest.skip(f"Chromium cannot start here: {exc.msg or exc}")
    try:
        yield driver
    finally:
        driver.quit()


def _results():
    """Four models; one lacks ImageNet (no gap) and one lacks an interpolation (an empty text cell)."""
    return [
        make_result("resnet18.tv_in1k", imagenet=0.7, laionet=0.6),
        make_result("resnet50.a1_in1k", imagenet=0.8, laionet=0.65, model_info={"interpolation": None}),
        make_result("vit_base_patch16_224.augreg_in21k_ft_in1k", imagenet=0.9, laionet=0.775),
        make_result("convnext_tiny.fb_in1k", imagenet=None, laionet=0.7),
    ]


def _page(tmp_path: Path) -> Path:
    board = build_leaderboard(_results())
    write_leaderboard(board, tmp_path / "board", formats=["html"], plots=False)
    return tmp_path / "board" / "index.html"


def _column(driver, col: str) -> list[str]:
    index = [c for c, _, _ in DISPLAY_COLUMNS].index(col) + 1
    cells = driver.find_elements("css selector", f"#leaderboard tbody tr td:nth-child({index})")
    return [cell.text for cell in cells]


def _sort(driver, col: str) -> None:
    headers = driver.find_elements("css selector", "#leaderboard thead th")
    next(h for h in headers if h.text.rstrip(" ▲▼") == HEADERS[col]).click()


def _severe(driver) -> list[dict]:
    return [entry for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"]


def test_page_sorts_numbers_text_and_gap_with_missing_cells_last(browser, tmp_path):
    page = _page(tmp_path)
    assert "http://" not in page.read_text() and "https://" not in page.read_text()  # nothing remote to fetch
    browser.get(page.as_uri())
    resnet18, resnet50, vit, convnext = (r.model for r in _results())
    assert _column(browser, "model") == [vit, convnext, resnet50, resnet18]  # as written: LAIONet top-1 desc

    _sort(browser, "laionet_top1")  # first click: ascending, as numbers
    assert _column(browser, "laionet_top1") == ["60.0", "65.0", "70.0", "77.5"]
    _sort(browser, "laionet_top1")
    assert _column(browser, "laionet_top1") == ["77.5", "70.0", "65.0", "60.0"]

    _sort(browser, "gap_top1")  # gaps 10, 15, 12.5; the model without ImageNet has none and goes last
    assert _column(browser, "model") == [resnet18, vit, resnet50, convnext]
    assert _column(browser, "gap_top1")[-1] == "–"
    _sort(browser, "gap_top1")
    assert _column(browser, "model") == [resnet50, vit, resnet18, convnext]

    _sort(browser, "interpolation")  # text; the empty cell is last both ways
    assert _column(browser, "model")[-1] == resnet50
    _sort(browser, "interpolation")
    assert _column(browser, "model")[-1] == resnet50

    _sort(browser, "model")
    assert _column(browser, "model") == sorted([resnet18, resnet50, vit, convnext], key=str.lower)
    assert _severe(browser) == []
