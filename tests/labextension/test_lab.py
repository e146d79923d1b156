"""The PAI Lab extension end to end: a real browser, a real ``jupyter lab`` with pai_extension, a
real ``pai server``. Compose and submit a job from a file and read its logs; open a failed job's
debug terminal and run a command in it; use a marketplace item in a submission."""

from __future__ import annotations

import re

import httpx

from tests.labextension.conftest import shot
from tests.server import job_yaml, wait_state


def open_sidebar(page, caption: str) -> None:
    tab = page.locator(f".lm-TabBar-tab[title='{caption}']")
    if tab.get_attribute("aria-selected") != "true":
        tab.click()


def test_submit_file_watch_success_and_read_logs(page, lab, pai):
    (lab.root / "hello.py").write_text("import sys\nprint('hello-from-lab-job', sys.version_info[0])\n")
    page.locator(".jp-DirListing-item", has_text="hello.py").first.wait_for()
    page.locator(".jp-DirListing-item", has_text="hello.py").first.click(button="right")
    page.locator(".lm-Menu-item", has_text="Submit as PAI job").click()
    panel = page.locator("#pai-submit")
    panel.wait_for(state="visible")
    name = panel.locator("input[name=name]").input_value()
    # keyboard: the fields are reachable with Tab, in order, and labelled
    panel.locator("input[name=name]").focus()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.name") == "virtualCluster"
    assert panel.get_by_label("Virtual cluster").count() == 1
    assert name.startswith("hello-")
    assert "python3 hello.py" in panel.locator("textarea[name=command]").input_value()
    # the YAML tab shows the generated protocol
    panel.get_by_role("tab", name="YAML").click()
    assert f"name: {name}" in panel.locator("textarea.pai-Yaml").input_value()
    panel.get_by_role("tab", name="Form").click()
    # a server error lands at its field: more GPUs than the cluster has
    panel.locator("input[name=gpu]").fill("64")
    panel.locator(".pai-Submit").click()
    err = panel.locator("[data-field-error=gpu]")
    err.wait_for()
    page.wait_for_function("document.querySelector('[data-field-error=gpu]').textContent.length > 0")
    assert "resourcePerInstance" in err.text_content()
    shot(page, "01-submit-field-error")
    panel.locator("input[name=gpu]").fill("0")
    panel.locator(".pai-Submit").click()
    detail = page.locator(".pai-JobDetail[data-state=SUCCEEDED]")
    detail.wait_for(timeout=60_000)
    page.wait_for_function("document.querySelector('.pai-JobDetail .pai-Log')?.textContent.includes('hello-from-lab-job')")
    assert "hello-from-lab-job 3" in detail.locator(".pai-Log").text_content()
    shot(page, "02-job-succeeded-logs")
    # and it is in the jobs sidebar, with a filter
    open_sidebar(page, "PAI jobs")
    jobs = page.locator("#pai-jobs")
    jobs.locator("select.pai-Filter-state").select_option("SUCCEEDED")
    jobs.locator(f"tr[data-job='alice~{name}']").wait_for()
    jobs.locator("input.pai-Filter-name").fill("no-such-job")
    assert jobs.locator(f"tr[data-job='alice~{name}']").count() == 0
    jobs.locator("input.pai-Filter-name").fill("")
    shot(page, "03-jobs-panel")


def test_failed_jobs_debug_terminal(page, lab, pai):
    extra = "extras:\n  debugReservation: {minutes: 10}"
    r = httpx.post(pai.url + "/api/v2/jobs", content=job_yaml("broken", ["echo about to fail", "exit 3"], gpu=1,
                                                              extra=extra),
                   headers={"Authorization": f"Bearer {pai.alice}", "Content-Type": "text/yaml"})
    assert r.status_code == 202, r.text
    with pai.client(pai.alice) as c:
        detail = wait_state(c, "alice~broken", {"FAILED"})
    gpus = detail["taskRoles"]["worker"]["taskStatuses"][0]["containerGpus"]
    open_sidebar(page, "PAI jobs")
    jobs = page.locator("#pai-jobs")
    jobs.locator("select.pai-Filter-state").select_option("")
    jobs.get_by_role("button", name="Refresh").click()
    jobs.locator("tr[data-job='alice~broken'] button.pai-Link").click()
    view = page.locator("#pai-job-alice_broken")
    view.locator(".pai-ExitSpec").wait_for()
    shot(page, "04-failed-job")
    view.get_by_role("button", name="Open debug terminal").click()
    term = page.locator(".pai-Terminal[data-connected=true]")
    term.wait_for()
    term.locator(".xterm").click()
    page.keyboard.type("echo GPU=$CUDA_VISIBLE_DEVICES\n")
    page.wait_for_function(
        "expected => [...document.querySelectorAll('.pai-Terminal .xterm-rows')]"
        ".some(e => e.textContent.includes(expected))", arg=f"GPU={gpus}")
    shot(page, "05-debug-terminal")


def test_marketplace_item_in_a_submission(page, lab, pai):
    with pai.client(pai.alice) as c:
        r = c.post("/marketplace/api/items", json={
            "name": "lab-e2e-python", "type": "dockerimage", "protocol": {"uri": "python:3.11"},
            "summary": "Python for the Lab test", "visibility": "private", "tags": ["lab-e2e"]})
        assert r.status_code in (200, 201), r.text
    open_sidebar(page, "PAI marketplace")
    market = page.locator("#pai-market")
    market.locator("select[aria-label='Item type']").select_option("dockerimage")
    market.get_by_label("Search the marketplace").fill("lab-e2e")
    market.locator("li[data-item='lab-e2e-python'] button").click()
    market.locator(".pai-MarketDetail[data-item='lab-e2e-python']").wait_for()
    shot(page, "06-marketplace-item")
    market.get_by_role("button", name="Use in submission panel").click()
    panel = page.locator("#pai-submit")
    panel.wait_for(state="visible")
    assert "lab-e2e-python" in panel.locator(".pai-Note").text_content()
    panel.locator("input[name=name]").fill("from-market")
    panel.locator("textarea[name=command]").fill("echo market-image-ok")
    panel.get_by_role("tab", name="YAML").click()
    assert "marketplace: lab-e2e-python" in panel.locator("textarea.pai-Yaml").input_value()
    shot(page, "07-submit-with-market-item")
    panel.locator(".pai-Submit").click()
    page.locator("#pai-job-alice_from-market[data-state=SUCCEEDED]").wait_for(timeout=60_000)
    with pai.client(pai.alice) as c:
        config = c.get("/api/v2/jobs/alice~from-market/config").text
    assert re.search(r"item: lab-e2e-python", config), config
    # the status bar item shows my jobs
    assert page.locator(".pai-Status").text_content().startswith("PAI:")
    shot(page, "08-done")
    # JupyterLab's dark theme reaches the panels (Lab CSS variables only)
    light_bg = page.evaluate("getComputedStyle(document.querySelector('#pai-submit')).backgroundColor")
    page.locator(".lm-MenuBar-itemLabel", has_text="Settings").click()
    page.locator(".lm-Menu-item", has_text="Theme").first.hover()
    page.get_by_role("menuitem", name="JupyterLab Dark", exact=True).click()
    page.wait_for_function("document.body.dataset.jpThemeLight === 'false'")
    page.wait_for_function("bg => getComputedStyle(document.querySelector('#pai-submit')).backgroundColor !== bg",
                           arg=light_bg)
    page.locator("#jupyterlab-splash").wait_for(state="detached")
    shot(page, "09-dark-theme")
