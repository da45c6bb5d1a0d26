"""End to end in a real headless Chromium: an operator logs in to the console and disables a pipeline."""

from __future__ import annotations

import shutil

import pytest

from events.models import Event
from pipelines import services as pipelines
from pipelines.choices import PipelineState
from pipelines.models import Pipeline
from tests.conftest import need, simple_config

CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def browser(tmp_path):
    need(bool(shutil.which("chromium") and shutil.which("chromedriver")), "Chromium not installed")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    driver = webdriver.Chrome(options=options, service=Service(executable_path=shutil.which("chromedriver")))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_an_operator_disables_a_pipeline_in_the_browser(live_server, browser, django_user_model):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.select import Select
    from selenium.webdriver.support.ui import WebDriverWait

    django_user_model.objects.create_superuser("operator", "operator@example.com", "correct horse battery")
    namespace = pipelines.create_namespace("team-a", "Team A", "")
    pipeline, config = pipelines.register_config(namespace, "build", simple_config())
    pipelines.deploy_config(pipeline, config.version)
    wait = WebDriverWait(browser, 20)

    # The real login form, redirecting to the pipeline list.
    browser.get(f"{live_server.url}/admin/login/?next=/admin/pipelines/pipeline/")
    browser.find_element(By.ID, "id_username").send_keys("operator")
    browser.find_element(By.ID, "id_password").send_keys("correct horse battery")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    wait.until(ec.presence_of_element_located((By.ID, "result_list")))
    assert "Gofer operators' console" in browser.page_source
    rows = browser.find_elements(By.CSS_SELECTOR, "#result_list tbody tr")
    assert [row.find_element(By.CSS_SELECTOR, "th").text for row in rows] == ["build"]

    # Select the pipeline, pick the action, press Go.
    browser.find_element(By.CSS_SELECTOR, f"input[name=_selected_action][value='{pipeline.pk}']").click()
    Select(browser.find_element(By.NAME, "action")).select_by_value("disable_pipelines")
    browser.find_element(By.CSS_SELECTOR, "button[name=index]").click()
    message = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "ul.messagelist li.success")))
    assert "Disabled 1 pipeline: team-a/build" in message.text

    pipeline = Pipeline.objects.get(pk=pipeline.pk)
    assert pipeline.state == PipelineState.DISABLED
    assert Event.objects.filter(kind="disabled_pipeline", namespace_id="team-a", pipeline_slug="build").exists()
    # The list now shows it disabled.
    state_cell = browser.find_element(By.CSS_SELECTOR, "#result_list tbody tr td.field-state")
    assert state_cell.text == "Disabled"
