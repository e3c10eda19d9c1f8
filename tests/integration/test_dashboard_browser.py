"""The dashboard in a real browser: headless Chromium (Debian's ``chromium`` and ``chromium-driver``)
driven by Selenium, against ``forecast dashboard`` started on a free loopback port with a token.

Each page must load with no console error and no request leaving 127.0.0.1, draw its charts with
their data marks, and be screenshotted; a filter change must reach the URL and change the figures;
the login form must refuse a wrong token and set an HttpOnly, SameSite=Strict cookie for the right
one; a view that takes longer than the server waits for it must answer at once and reload itself
into the page. Without a browser the tests skip and say which program is missing (``.ci/run`` installs both).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.dashboard_env import AS_OF, dashboard_server, trained_env
from tests.processes import free_port

pytestmark = pytest.mark.slow  # a server and a browser

TOKEN = "browser-token-for-tests"
PAGES = {
    "overview": "/",
    "reps": "/reps",
    "pipeline": "/pipeline",
    "prospects": "/prospects",
    "activity": "/activity",
    "insights": "/insights",
    "models": "/models",
}
CHARTED = {"overview", "reps", "pipeline", "activity"}
"""The pages that draw charts on the test CRM."""
DATA_MARKS = ".band, .p50, .bar, .line, .point"
"""The chart elements that stand for data (``forecast.dashboard.charts``), not axes or legends."""
MARKS_JS = (
    "return [...document.querySelectorAll('main svg')].map(s => "
    f"[...s.querySelectorAll('{DATA_MARKS}')].filter(e => "
    "{const b = e.getBoundingClientRect(); return b.width > 0 || b.height > 0}).length)"
)
"""Per chart of the page, how many data marks the browser laid out with a size."""


def _programs() -> tuple[str, str]:
    """Chromium and its driver, or skip naming what is missing."""
    browser = next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
    )
    driver = shutil.which("chromedriver")
    missing = [name for name, path in (("chromium", browser), ("chromedriver", driver)) if path is None]
    if missing:
        pytest.skip(
            f"no {' and no '.join(missing)} on PATH: install Debian's chromium and chromium-driver "
            "(.ci/run does when it runs as root)"
        )
    pytest.importorskip("selenium", reason="selenium (the dev dependency group) is not installed")
    assert browser is not None and driver is not None
    return browser, driver


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Iterator[str]:
    """``forecast dashboard`` with a token, in its own process; yields its base URL."""
    _programs()
    env = {
        **os.environ,
        **trained_env(tmp_path_factory, worker_id),
        "FORECAST_API_TOKEN": TOKEN,
        "FORECAST_THREADS": "1",
    }
    port = free_port()
    log = tmp_path_factory.mktemp("dashboard-server") / "server.log"
    with dashboard_server(env, port, log):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    """Headless Chromium at 1280×800 logging the console and the network (its own profile)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, chromedriver = _programs()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in (
        "--headless=new",
        "--no-sandbox",  # root in a container
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,800",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-default-apps",
        "--disable-sync",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    chrome = webdriver.Chrome(service=Service(chromedriver), options=options)
    chrome.set_page_load_timeout(120)  # the first Overview runs 10,000 revenue simulations
    try:
        yield chrome
    finally:
        chrome.quit()


def _login(driver: Any, base: str, path: str, token: str) -> None:
    """Open ``path``, land on the login form, post ``token``."""
    from selenium.webdriver.common.by import By

    driver.get(f"{base}{path}")
    assert urlsplit(driver.current_url).path == "/login", driver.current_url
    field = driver.find_element(By.NAME, "token")
    field.send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
    _wait_for_the_answer(driver)


def _wait_for_the_answer(driver: Any) -> None:
    """Wait until the login's answer is shown: a click does not wait for the POST and its redirect
    (the first page after it may take a minute to compute), so reading the URL at once raced it."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def answered(d: Any) -> bool:
        if urlsplit(d.current_url).path != "/login":
            return True
        return "Wrong token." in d.find_element(By.TAG_NAME, "main").text

    ignored = (NoSuchElementException, StaleElementReferenceException)
    WebDriverWait(driver, 180, poll_frequency=0.2, ignored_exceptions=ignored).until(answered)


@pytest.fixture(scope="module")
def session(driver: Any, server: str) -> tuple[Any, str]:
    """The browser logged in to the server."""
    _login(driver, server, "/login?next=%2Fhealthz", TOKEN)
    return driver, server


def _shown(driver: Any) -> None:
    """Wait while the page says its figures are being computed: it reloads itself until they are
    (``forecast.dashboard.deferred``; the server waits 0.1 s for a page, and a first view of another
    as of reads the CRM and runs the forecast)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def ready(d: Any) -> bool:  # a reload's document is whole (not committed and half parsed)
        loaded = d.execute_script("return document.readyState") == "complete"
        return bool(loaded and d.find_elements(By.TAG_NAME, "main")) and not d.find_elements(
            By.CSS_SELECTOR, "[data-preparing]"
        )

    WebDriverWait(
        driver, 300, poll_frequency=0.2, ignored_exceptions=(StaleElementReferenceException,)
    ).until(ready)


def _open(driver: Any, url: str) -> None:
    """Open ``url`` and wait for its page (:func:`_shown`)."""
    driver.get(url)
    _shown(driver)


def _requests(driver: Any) -> list[str]:
    """The URLs the page asked for since the last call (Chromium's performance log)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def _figures(driver: Any) -> dict[str, str]:
    from selenium.webdriver.common.by import By

    return {
        e.get_attribute("data-figure"): e.get_attribute("data-value")
        for e in driver.find_elements(By.CSS_SELECTOR, "[data-figure]")
    }


def test_login_refuses_a_wrong_token_and_sets_a_strict_httponly_cookie(driver: Any, server: str) -> None:
    from selenium.webdriver.common.by import By

    driver.delete_all_cookies()
    _login(driver, server, f"/models?as_of={AS_OF}", "not-the-token")
    assert "Wrong token." in driver.find_element(By.TAG_NAME, "main").text
    assert driver.get_cookie("forecast_session") is None
    _login(driver, server, f"/models?as_of={AS_OF}", TOKEN)
    _shown(driver)
    assert urlsplit(driver.current_url).path == "/models"
    cookie = driver.get_cookie("forecast_session")
    assert cookie is not None and cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert TOKEN not in cookie["value"]
    assert driver.find_element(By.TAG_NAME, "h1").text == "Models"
    assert driver.execute_script("return document.cookie") == ""  # no script can read it


def test_every_page_loads_offline_with_its_charts(
    session: tuple[Any, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    from selenium.webdriver.common.by import By

    driver, base = session
    shots = tmp_path_factory.mktemp("dashboard-screenshots")
    driver.get_log("browser")  # start clean
    _requests(driver)
    for name, path in PAGES.items():
        _open(driver, f"{base}{path}?as_of={AS_OF}")
        assert urlsplit(driver.current_url).path == path, name  # not sent back to the login
        assert driver.find_element(By.TAG_NAME, "h1").text, name
        assert _figures(driver)["as_of"] == f"{AS_OF}T00:00:00", name
        errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        assert not errors, (name, errors)
        requests = _requests(driver)
        assert requests, name
        away = [u for u in requests if urlsplit(u).hostname != "127.0.0.1" and not u.startswith("data:")]
        assert not away, (name, away)
        marks = driver.execute_script(MARKS_JS)
        if name in CHARTED:
            assert marks and all(m > 0 for m in marks), (name, marks)  # every chart has its data drawn
        assert driver.save_screenshot(str(shots / f"{name}.png")), name
    print(f"screenshots in {shots}")


def test_a_filter_change_reaches_the_url_and_changes_the_figures(session: tuple[Any, str]) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    driver, base = session
    _open(driver, f"{base}/reps?as_of={AS_OF}")
    before = [e.get_attribute("data-row") for e in driver.find_elements(By.CSS_SELECTOR, "tr[data-row]")]
    teams = Select(driver.find_element(By.NAME, "team"))
    team = teams.options[1].get_attribute("value")  # the first after "all"
    teams.select_by_value(team)
    driver.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]").click()
    WebDriverWait(driver, 30).until(lambda d: "team=" in d.current_url)
    _shown(driver)
    query = parse_qs(urlsplit(driver.current_url).query)
    assert query["team"] == [team] and query["as_of"] == [AS_OF]
    after = [e.get_attribute("data-row") for e in driver.find_elements(By.CSS_SELECTOR, "tr[data-row]")]
    assert team in after and "(all)" not in after and "(all)" in before
    assert set(after) - {team} < set(before)  # fewer reps: the team's
    nav = driver.find_element(By.CSS_SELECTOR, "nav a[href^='/pipeline']").get_attribute("href")
    assert parse_qs(urlsplit(nav).query)["team"] == [team]  # the links keep the filter


def test_phone_width_has_no_sideways_scroll(session: tuple[Any, str]) -> None:
    driver, base = session
    driver.set_window_size(390, 844)
    try:
        _open(driver, f"{base}/reps?as_of={AS_OF}")
        overflow = driver.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 1  # wide tables scroll inside their own box
    finally:
        driver.set_window_size(1280, 800)


def test_the_overview_shows_each_figure_against_the_previous_period(
    session: tuple[Any, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The comparison is laid out, each change told by a mark and a sign in text, up and down told apart
    by more than a colour (and in two colours that are not red against green)."""
    from selenium.webdriver.common.by import By

    driver, base = session
    _open(driver, f"{base}/?as_of={AS_OF}")
    section = driver.find_element(By.CSS_SELECTOR, "section[data-compare]")
    figures = section.find_elements(By.CSS_SELECTOR, "[data-metric]")
    assert len(figures) >= 5
    seen: dict[str, str] = {}
    for item in figures:
        change = item.find_element(By.CSS_SELECTOR, ".change")
        assert change.size["height"] > 0 and change.size["width"] > 0
        text = change.text
        assert text == "no data" or (text[0] in "▲▼=" and text[2] in "+−±"), text
        seen[change.get_attribute("class").split()[-1]] = change.value_of_css_property("color")
    assert {"up", "down"} & set(seen)  # something moved between the two periods
    if "up" in seen and "down" in seen:
        assert seen["up"] != seen["down"]
    driver.execute_script("arguments[0].scrollIntoView()", section)
    shots = tmp_path_factory.mktemp("dashboard-changes")
    assert driver.save_screenshot(str(shots / "overview-changes.png"))
    _open(driver, f"{base}/reps?as_of={AS_OF}")
    table = driver.find_element(By.CSS_SELECTOR, "table[data-table=changes]")
    cells = table.find_elements(By.CSS_SELECTOR, "td[data-metric] .change")
    assert cells and all(c.size["height"] > 0 for c in cells)
    driver.execute_script("arguments[0].scrollIntoView()", table)
    assert driver.save_screenshot(str(shots / "reps-changes.png"))
    print(f"screenshot of the Overview's comparison in {shots}")


@pytest.fixture(scope="module")
def at_once(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Iterator[str]:
    """``forecast dashboard --wait 0`` (no token, nothing kept): every view not ready answers at once."""
    _programs()
    env = {**os.environ, **trained_env(tmp_path_factory, worker_id), "FORECAST_THREADS": "1"}
    env.pop("FORECAST_API_TOKEN", None)
    port = free_port()
    log = tmp_path_factory.mktemp("dashboard-at-once") / "server.log"
    with dashboard_server(env, port, log, "--no-keep", "--wait", "0"):
        yield f"http://127.0.0.1:{port}"


def test_a_view_being_computed_reloads_itself_into_the_page(driver: Any, at_once: str) -> None:
    """The first answer says the view is being computed, with no console error; the browser reloads
    it by itself (no script) until the page, with its figures and rows, is there at the same address."""
    from selenium.webdriver.common.by import By

    url = f"{at_once}/reps?as_of={AS_OF}&period=2024-10-01..2024-10-31"
    driver.get_log("browser")  # start clean
    driver.get(url)
    main = driver.find_element(By.TAG_NAME, "main")
    assert main.get_attribute("data-preparing") == url.removeprefix(at_once)
    assert "being computed" in main.text and driver.find_element(By.TAG_NAME, "h1").text == "Reps"
    _shown(driver)
    assert driver.current_url == url
    assert _figures(driver)["as_of"] == f"{AS_OF}T00:00:00"
    assert driver.find_elements(By.CSS_SELECTOR, "tr[data-row]")
    errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert not errors, errors
