"""Headless Chromium for UI tests: Debian's chromium driven through its chromium-driver by Selenium (no browser is
downloaded: scripts/bootstrap browser installs both). Started for a test and quit after it, with a profile of its
own; the flags keep it off the network this machine does not have (background updates, sync, QUIC)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless=new",
    "--no-sandbox",  # as root, as the CI runs
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1600,1000",
)


@contextlib.contextmanager
def chromium(profile: Path) -> Iterator[WebDriver]:
    """A headless Chromium with a new profile in ``profile``, its console kept for browser_errors()."""
    for binary in (CHROMIUM, CHROMEDRIVER):
        assert binary.exists(), f"{binary} is missing: run `scripts/bootstrap browser`"
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()  # ends Chromium and stops its chromedriver process


def wait_for_element(driver: WebDriver, css: str, timeout: float = 60) -> WebElement:
    return WebDriverWait(driver, timeout).until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, css)))


def wait_for_text(driver: WebDriver, text: str, timeout: float = 60) -> None:
    WebDriverWait(driver, timeout).until(lambda d: text in d.find_element(By.TAG_NAME, "body").text)


def browser_errors(driver: WebDriver) -> list[str]:
    """The console's errors since the last call (level SEVERE: uncaught exceptions, failed requests)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def sign_in(driver: WebDriver, base_url: str, username: str, password: str) -> None:
    """SimpleAuthManager's sign-in form at /auth/login; done once the UI's home page has loaded."""
    driver.get(f"{base_url}/auth/login")
    wait_for_element(driver, "input[name=username]").send_keys(username)
    driver.find_element(By.CSS_SELECTOR, "input[name=password]").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(driver, 60).until(lambda d: "/auth/login" not in d.current_url)


def table_cells(table: WebElement) -> list[list[str]]:
    """The text of each data cell of an HTML table, row by row (header rows, all <th>, left out)."""
    rows = table.find_elements(By.TAG_NAME, "tr")
    cells = [[cell.text for cell in row.find_elements(By.TAG_NAME, "td")] for row in rows]
    return [row for row in cells if row]


def click_text(driver: WebDriver, text: str) -> None:
    """Click the innermost element whose text contains ``text`` (a collapsed group's summary, a tab)."""
    innermost = f"//*[contains(., {text!r}) and not(*[contains(., {text!r})])]"
    driver.find_element(By.XPATH, innermost).click()
