"""Selenium with Debian's chromium-driver (no driver or browser download), for
the pytest proof of the ferrokey plugin: one Chromium for the session, started
with the flags of `ferrokey_chrome` (Chrome's WebAuthn sheets)."""
import os

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service


@pytest.fixture(scope="session")
def rp_url():
    """The relying party (tests/clients/rp_app.py), started by the harness."""
    url = os.environ.get("FERROKEY_E2E_RP")
    if not url:
        raise pytest.UsageError("FERROKEY_E2E_RP is not set (run tests/clients/run-clients-e2e.sh)")
    return url.rstrip("/")


@pytest.fixture(scope="session")
def driver(ferrokey_chrome):
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("CHROMIUM", "/usr/lib/chromium/chromium")
    for arg in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--ipc-connection-timeout=600", *ferrokey_chrome.flags]:
        options.add_argument(arg)
    service = Service(executable_path=os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
    browser = webdriver.Chrome(service=service, options=options)
    browser.set_script_timeout(120)
    browser.set_page_load_timeout(180)
    yield browser
    browser.quit()
