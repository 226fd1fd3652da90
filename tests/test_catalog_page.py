"""The catalog's web page in a real browser: Debian's headless Chromium + chromedriver driven by Selenium.
Load, browse by label, play an item with "watch next", search briefs, upload a clip and see its label
probabilities and similar videos. Skips, saying why, where Chromium or chromedriver is missing.

``CATALOG_SCREENSHOT=docs/catalog_page.png`` keeps a screenshot of the page after the upload."""
import os
import shutil
import tempfile

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.ui import WebDriverWait

from data_interface_for_model.layout import iter_layout
from serving.catalog.app import create_app
from serving.catalog.config import CatalogConfig
from serving.catalog.fake import FakeEmbedder
from serving.catalog.service import CatalogService
from tests.test_catalog_api import serve

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1280,1000")


@pytest.fixture
def browser(tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not chromium or not driver_path:
        pytest.skip("headless browser test needs Debian's chromium and chromium-driver (apt-get install "
                    "chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="catalog-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.mark.slow
def test_page_browse_play_search_and_upload(browser, demo_root, tmp_path):
    items = list(iter_layout(demo_root))
    catalog = [i for i in items if i.label in ("Beach", "City", "Nature", "Sea", "space", "Animals")]
    upload = next(i for i in items if i.label == "Clouds")
    service = CatalogService(CatalogConfig(store=f"sqlite:///{tmp_path / 'c.sqlite'}", media_dir=str(tmp_path / "m")),
                             FakeEmbedder())
    try:
        for item in catalog:
            service.index_path(item.mp4_id, item.video_path, item.brief.strip()[:32], item.brief, item.label,
                               item.cover_path)
        with serve(create_app(service)) as url:
            wait = WebDriverWait(browser, 30)
            browser.get(url + "/")
            wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")
            assert len(browser.find_elements(By.CSS_SELECTOR, "#grid .card")) == len(catalog)
            assert f"{len(catalog)} videos" in browser.find_element(By.ID, "status").text

            Select(browser.find_element(By.ID, "label")).select_by_value("Beach")
            wait.until(lambda d: d.find_element(By.ID, "heading").text.startswith("Beach"))
            cards = browser.find_elements(By.CSS_SELECTOR, "#grid .card")
            beach = {i.mp4_id for i in catalog if i.label == "Beach"}
            assert {c.get_attribute("data-id") for c in cards} == beach

            cards[0].click()
            wait.until(EC.visibility_of_element_located((By.ID, "player-panel")))
            wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#watch-next .row")) == 6)
            assert browser.find_element(By.ID, "player").get_attribute("src").endswith("/video")
            assert cards[0].get_attribute("data-id") not in {
                r.get_attribute("data-id") for r in browser.find_elements(By.CSS_SELECTOR, "#watch-next .row")}

            word = catalog[3].brief.split()[-1]
            browser.find_element(By.ID, "q").send_keys(word)
            browser.find_element(By.CSS_SELECTOR, "#search-form button").click()
            wait.until(lambda d: "results for" in d.find_element(By.ID, "heading").text)
            found = {c.get_attribute("data-id") for c in browser.find_elements(By.CSS_SELECTOR, "#grid .card")}
            assert catalog[3].mp4_id in found

            browser.find_element(By.ID, "upload-file").send_keys(os.path.abspath(upload.video_path))
            browser.find_element(By.ID, "upload-brief").send_keys(upload.brief)
            browser.find_element(By.ID, "upload-button").click()
            wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#similar .row")) == 6)
            bars = browser.find_elements(By.CSS_SELECTOR, "#probabilities .bar")
            assert len(bars) == 5 and "Predicted:" in browser.find_element(By.ID, "probabilities").text
            assert browser.find_element(By.ID, "upload-error").text == ""
            target = os.environ.get("CATALOG_SCREENSHOT")
            browser.execute_script("window.scrollTo(0, 0)")
            browser.save_screenshot(target or str(tmp_path / "page.png"))
            logs = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
            assert not logs, logs
    finally:
        service.close()
