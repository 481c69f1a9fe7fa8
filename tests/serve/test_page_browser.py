"""The search page in a real browser: headless Chromium (Debian's ``chromium`` and ``chromium-driver``, which
``make setup`` installs) driven by Selenium against a live uvicorn server on loopback. The screenshot lands in
``.cache/test-artifacts/search-page.png``. Skipped where no Chromium is installed, unless
``RANKSTACK_REQUIRE_BROWSER=1`` (CI sets it) turns the skip into a failure."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from rankstack.serve import create_app, load_spec
from tests.serve.conftest import write_spec

ARTIFACTS = Path(__file__).resolve().parents[2] / ".cache" / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


def _need_browser() -> None:
    if CHROMIUM and DRIVER:
        return
    message = "headless Chromium is not installed (apt install chromium chromium-driver; make setup does it)"
    if os.environ.get("RANKSTACK_REQUIRE_BROWSER") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def server(served):
    _need_browser()
    uvicorn = pytest.importorskip("uvicorn")
    spec = write_spec(served, '[retrievers.bm25]\nindex = "toy"\nk = 30\n', "browser.toml")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(create_app(load_spec(spec)), host="127.0.0.1", port=port, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the test server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    _need_browser()
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,1400", "--disable-gpu"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def test_type_a_query_see_results_page_forward(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 20)
    browser.get(server + "/")
    wait.until(lambda d: "bm25" in d.find_element(By.ID, "pipeline").text)  # the page asked /healthz
    box = browser.find_element(By.ID, "q")
    box.send_keys("which animal lives near the river", Keys.ENTER)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "li.hit")) == 10)
    first = browser.find_elements(By.CSS_SELECTOR, "li.hit")
    assert "#1 ·" in first[0].find_element(By.CLASS_NAME, "meta").text
    marks = [m.text.lower() for m in browser.find_elements(By.CSS_SELECTOR, "li.hit mark")]
    assert "river" in marks and "lives" in marks  # query terms highlighted (lives: same stem as the query's)
    assert "Results 1–10" in browser.find_element(By.ID, "status").text
    assert "bm25:" in browser.find_element(By.ID, "timings").text
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "search-page.png"))
    wait.until(ec.element_to_be_clickable((By.ID, "next"))).click()
    wait.until(lambda d: "Results 11–12" in d.find_element(By.ID, "status").text)
    ranks = [h.find_element(By.CLASS_NAME, "meta").text.split(" ")[0] for h in browser.find_elements(By.CSS_SELECTOR, "li.hit")]
    assert ranks == ["#11", "#12"]  # 12 documents in all: the second page holds the last two
    assert browser.find_element(By.ID, "next").get_attribute("disabled") is not None
    assert "offset=10" in browser.current_url  # the page can be reloaded or shared
    browser.save_screenshot(str(ARTIFACTS / "search-page-2.png"))
    browser.find_element(By.ID, "prev").click()
    wait.until(lambda d: "Results 1–10" in d.find_element(By.ID, "status").text)


def test_an_over_long_query_shows_the_servers_message(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server + "/")
    box = browser.find_element(By.ID, "q")
    box.send_keys("x" * 1001, Keys.ENTER)
    WebDriverWait(browser, 20).until(lambda d: "limits.max_query_chars" in d.find_element(By.ID, "status").text)
    assert browser.find_element(By.ID, "status").get_attribute("class") == "error"
