"""JupyterLab in headless Chromium through a presigned URL: a cell runs boto3 as the instance's
role; expired and tampered URLs are refused. Needs Debian's chromium and chromium-driver."""

from __future__ import annotations

import shutil
import time

import pytest
from stratum_testing import StratumServer, sagemaker_role
from test_notebook_instances import WAIT, uid

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not shutil.which("chromedriver") or not shutil.which("chromium"),
                                 reason="needs chromium and chromium-driver")]


def test_browser_runs_a_cell_as_the_role(server: StratumServer) -> None:
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    sm = server.client("sagemaker")
    role = sagemaker_role(server, "nb")
    name = uid("nb")
    sm.create_notebook_instance(NotebookInstanceName=name, InstanceType="ml.t3.medium", RoleArn=role)
    sm.get_waiter("notebook_instance_in_service").wait(NotebookInstanceName=name, WaiterConfig=WAIT)
    url = sm.create_presigned_notebook_instance_url(NotebookInstanceName=name)["AuthorizedUrl"]
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=shutil.which("chromedriver")),
                              options=options)
    try:
        token = url.split("authToken=", 1)[1]
        driver.get(url.split("?")[0] + "?authToken=" + token[:-3] + ("AAA" if token[-3:] != "AAA" else "BBB"))
        assert "tampered" in driver.page_source
        driver.get(url)
        # JupyterLab re-renders cells and outputs as the kernel starts: a stale element is looked up again.
        wait = WebDriverWait(driver, 90, ignored_exceptions=(StaleElementReferenceException, NoSuchElementException))
        wait.until(ec.title_contains("JupyterLab"))
        # A new notebook from the launcher, one cell, Shift+Enter.
        wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, ".jp-LauncherCard[data-category='Notebook']"))).click()
        wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, ".jp-Cell .cm-content")))
        wait.until(lambda d: "Idle" in d.find_element(By.CSS_SELECTOR, ".jp-StatusBar-Widget, body").text
                   or d.find_elements(By.CSS_SELECTOR, ".jp-Notebook-ExecutionIndicator[data-status='idle']"))
        time.sleep(1)
        wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, ".jp-Cell .cm-content"))).click()
        editor = driver.switch_to.active_element
        editor.send_keys("import boto3; print(boto3.client('sts').get_caller_identity()['Arn'])")
        editor.send_keys(Keys.SHIFT, Keys.ENTER)
        role_name = role.rsplit("/", 1)[1]
        expected = f"assumed-role/{role_name}/SageMaker"
        wait.until(lambda d: any(expected in e.text for e in d.find_elements(By.CSS_SELECTOR, ".jp-OutputArea")))
    finally:
        driver.quit()
    sm.stop_notebook_instance(NotebookInstanceName=name)
    sm.get_waiter("notebook_instance_stopped").wait(NotebookInstanceName=name, WaiterConfig=WAIT)
    sm.delete_notebook_instance(NotebookInstanceName=name)
