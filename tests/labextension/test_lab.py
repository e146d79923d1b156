"""The PAI Lab extension end to end: a real browser, a real ``jupyter lab`` with pai_extension, a
real ``pai server`` (with NNI 3.0). Compose and submit a job from a file, a notebook and a shell script
and read its logs; open a failed job's debug terminal and run a command in it; use a marketplace item
in a submission; open an experiment's trials, chart and NNI web UI."""

from __future__ import annotations

import json
import re
import time

import httpx
import pytest

from tests.labextension.conftest import contrast, shot
from tests.server import job_yaml, wait_state


def open_sidebar(page, caption: str) -> None:
    tab = page.locator(f".lm-TabBar-tab[title='{caption}']")
    if tab.get_attribute("aria-selected") != "true":
        tab.click()


def submit_opened_file(page, name_prefix: str, command: str, output: str) -> None:
    """The submission panel "Submit as PAI job" opened: it names the job after the file and runs
    it with `command`; submitted, the job succeeds and its log shows `output`."""
    panel = page.locator("#pai-submit")
    panel.wait_for(state="visible")
    page.wait_for_function("prefix => document.querySelector('#pai-submit input[name=name]').value.startsWith(prefix)",
                           arg=name_prefix)
    assert command in panel.locator("textarea[name=command]").input_value()
    name = panel.locator("input[name=name]").input_value()
    panel.locator(".pai-Submit").click()
    page.locator(f"#pai-job-alice_{name}[data-state=SUCCEEDED]").wait_for(timeout=60_000)
    page.wait_for_function("([id, output]) => document.querySelector('#' + id + ' .pai-Log')?.textContent.includes(output)",
                           arg=[f"pai-job-alice_{name}", output])


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
    jobs.locator("input.pai-Filter-name").fill("no-such-job")  # asked of the server (keyword=)
    jobs.locator(f"tr[data-job='alice~{name}']").wait_for(state="detached")
    jobs.get_by_text("No job matches the filters.").wait_for()
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


def test_live_validation_and_save_as_template(page, lab, pai):
    """The panel asks the server (a dry run) as you type and puts its errors at the field; the job,
    with parameters and a secret, is saved as a private marketplace template without the secret."""
    open_sidebar(page, "Submit a PAI job")
    panel = page.locator("#pai-submit")
    panel.get_by_role("tab", name="Form").click()
    panel.locator("input[name=name]").fill("tpl-e2e")
    panel.locator("textarea[name=command]").fill("echo lr=<% $parameters.lr %> key=<% $secrets.key %>")
    panel.locator("input[name=gpu]").fill("64")  # more than the cluster has: said without submitting
    page.wait_for_function(
        "document.querySelector('#pai-submit [data-field-error=gpu]').textContent.includes('resourcePerInstance')")
    panel.locator("input[name=gpu]").fill("1")
    panel.locator("textarea[name=parameters]").fill("lr=0.01")
    panel.locator("textarea[name=secrets]").fill("key=s3cret-value")
    page.wait_for_function("document.querySelector('#pai-submit').dataset.valid === 'true'")
    assert panel.locator(".pai-Validity").text_content().startswith("✓ Valid: 1 task, 1 GPU")
    assert panel.locator("[data-field-error=gpu]").text_content() == ""
    with pai.client(pai.alice) as c:  # the live checks stored nothing
        assert c.get("/api/v2/jobs/alice~tpl-e2e").status_code == 404
    shot(page, "10-live-validation")
    panel.get_by_role("button", name="Save as template").click()
    result = panel.locator(".pai-Result")
    page.wait_for_function("document.querySelector('#pai-submit .pai-Result').textContent.includes('Saved')")
    assert "Secrets left out" in result.text_content()
    with pai.client(pai.alice) as c:
        item = c.get("/marketplace/api/items/tpl-e2e").json()
    assert item["type"] == "template" and "s3cret" not in json.dumps(item)
    assert "$secrets.key" in item["protocol"] and "lr: '0.01'" in item["protocol"]
    # and it is in the marketplace browser, ready to use again
    open_sidebar(page, "PAI marketplace")
    market = page.locator("#pai-market")
    market.locator("select[aria-label='Item type']").select_option("template")
    market.get_by_label("Search the marketplace").fill("tpl-e2e")
    market.locator("li[data-item='tpl-e2e'] button").click()
    market.get_by_role("button", name="Use in submission panel").click()
    panel.wait_for(state="visible")
    page.wait_for_function("document.querySelector('#pai-submit textarea.pai-Yaml').value.includes('$parameters.lr')")


def test_submit_notebook_and_shell_script(page, lab, pai):
    """"Submit as PAI job" on a notebook (code cells, magics commented out) and on a shell script
    opened in the editor (its context menu)."""
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": "markdown", "metadata": {}, "source": ["# not code"]},
        {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
         "source": ["%matplotlib inline\n", "answer = 6 * 7"]},
        {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
         "source": ["print('nb-job-ok', answer)"]}]}
    (lab.root / "analysis.ipynb").write_text(json.dumps(nb))
    (lab.root / "run.sh").write_text("echo sh-job-ok $((6 * 7))\n")
    files = page.locator(".lm-TabBar-tab[data-id=filebrowser]")
    if files.get_attribute("aria-selected") != "true":
        files.click()
    item = page.locator(".jp-DirListing-item", has_text="analysis.ipynb").first
    item.wait_for()
    item.click(button="right")
    page.locator(".lm-Menu-item", has_text="Submit as PAI job").click()
    submit_opened_file(page, "analysis-", "python3 analysis.py", "nb-job-ok 42")

    page.locator(".jp-DirListing-item", has_text="run.sh").first.dblclick()
    editor = page.locator(".jp-FileEditor").last
    editor.wait_for()
    editor.locator(".cm-content").click(button="right")
    page.locator(".lm-Menu-item", has_text="Submit as PAI job").click()
    submit_opened_file(page, "run-", "bash run.sh", "sh-job-ok 42")
    shot(page, "11-shell-script-job")


TRIAL = """import nni
p = nni.get_next_parameter()
for i in range(3):
    nni.report_intermediate_result(p['x'] * i + p['y'])
nni.report_final_result(p['x'] * 10 + p['y'])
"""


def test_open_an_experiments_trials_chart_and_nni_ui(page, lab, pai):
    if not pai.has_nni:
        pytest.fail("NNI 3.0 could not be installed: run `bash scripts/nni-compat-venv.sh 3.0` where PyPI is "
                    "reachable", pytrace=False)
    space = {"x": {"_type": "choice", "_value": [1, 2, 3]}, "y": {"_type": "uniform", "_value": [0, 1]}}
    with pai.client(pai.alice) as c:
        r = c.post("/api/v2/experiments", json={
            "name": "lab-search", "searchSpace": space, "tuner": {"name": "Random"}, "maxTrialNumber": 3,
            "trialConcurrency": 3,
            "trial": {"command": "python3 trial.py", "cpu": 1, "memoryMB": 256, "files": {"trial.py": TRIAL}}})
        assert r.status_code == 202, r.text
        exp_id = r.json()["id"]
        deadline = time.monotonic() + 180
        while (e := c.get(f"/api/v2/experiments/{exp_id}").json())["state"] not in ("DONE", "ERROR", "STOPPED"):
            assert time.monotonic() < deadline, e
            time.sleep(1)
        assert e["state"] == "DONE" and e["ui"], e

    open_sidebar(page, "PAI experiments")
    panel = page.locator("#pai-experiments")
    panel.get_by_role("button", name="Refresh").click()
    row = panel.locator(f"tr[data-experiment='{exp_id}']")
    row.wait_for()
    assert "3 of 3 trials done" in row.text_content()
    row.get_by_role("button", name=f"Open experiment lab-search ({exp_id})").click()
    view = page.locator(f"#pai-experiment-{exp_id}[data-state=DONE]")
    view.wait_for()
    # the trials table: one row per trial, its parameters and metrics as the API has them
    for t in e["trials"]:
        cells = view.locator(f"tr[data-trial='{t['id']}'] td")
        assert view.locator(f"tr[data-trial='{t['id']}'] td[data-param=x]").text_content() == str(t["parameters"]["x"])
        assert float(view.locator(f"tr[data-trial='{t['id']}'] td.pai-Final").text_content()) == pytest.approx(
            t["final"], rel=1e-5)
        assert cells.nth(2).text_content() == "SUCCEEDED"
    best = max(e["trials"], key=lambda t: t["final"])
    assert view.locator("tr.pai-Best").get_attribute("data-trial") == best["id"]
    # sorted by final metric (a header button, by keyboard)
    view.get_by_role("button", name="Final").focus()
    page.keyboard.press("Enter")
    assert view.locator("tbody tr[data-trial]").first.get_attribute("data-trial") == best["id"]
    # the chart: a mark per trial; the tabs switch with the arrow keys
    assert view.locator(".pai-ChartBox [data-series='Final metric'] circle").count() == 3
    view.get_by_role("tab", name="Final metrics").focus()
    page.keyboard.press("ArrowRight")
    view.locator(".pai-ChartBox[data-kind=intermediate]").wait_for()
    assert view.locator(".pai-ChartBox .pai-Series-trial").count() == 3
    shot(page, "12-experiment-trials")

    # a trial is a PAI job: its link opens the job
    view.locator(f"tr[data-trial='{best['id']}'] button.pai-Link").click()
    job = best["job"]["name"].replace("~", "_")
    page.locator(f"#pai-job-{job}[data-state=SUCCEEDED]").wait_for()

    # NNI's own web UI in a Lab tab, through the Jupyter server as the user
    page.locator(f".lm-TabBar-tab[title='NNI experiment {exp_id}']").click()
    view.get_by_role("button", name="Open NNI web UI").click()
    frame = page.frame_locator(f"#pai-nni-{exp_id} iframe")
    frame.get_by_text(exp_id).first.wait_for(timeout=60_000)
    frame.get_by_text("Best metric").first.wait_for()  # NNI's overview, its data fetched through the proxy
    assert "lab-search" in frame.locator("body").inner_text()
    shot(page, "13-nni-web-ui")

    # stop from the Lab: NNI goes, and with it the UI button
    page.locator(f".lm-TabBar-tab[title='NNI experiment {exp_id}']").click()
    view.get_by_role("button", name="Stop experiment").click()
    page.wait_for_function("id => document.querySelector(`#pai-experiment-${id} .pai-OpenNni`).disabled", arg=exp_id)
    with pai.client(pai.alice) as c:
        assert c.get(f"/api/v2/experiments/{exp_id}").json()["ui"] is None


def test_panels_text_is_readable_in_light_and_dark_themes(page, lab, pai):
    """WCAG AA (4.5:1) for all the panels' text (state badges, links, notes, errors), in the theme the
    page is in and then in the other one."""
    panels = ["#pai-jobs", "#pai-submit", "#pai-market", "#pai-experiments", ".pai-JobDetail",
              ".pai-ExperimentDetail"]
    # an error line and a waiting reason, to measure their colours too
    page.evaluate("""() => {
        document.querySelector('#pai-submit [data-field-error=gpu]').textContent = 'too many GPUs';
        const w = document.createElement('div'); w.className = 'pai-Waiting'; w.id = 'contrast-probe';
        w.textContent = 'waiting: VC default has 0 of 4 GPUs free'; document.querySelector('#pai-jobs').append(w);
    }""")
    for _ in ("this theme", "the other theme"):
        dark = page.evaluate("document.body.dataset.jpThemeLight === 'false'")
        for sel in panels:
            measured = contrast(page, sel)
            assert measured, f"no text measured in {sel}"
            low = [m for m in measured if m["ratio"] < 4.5]
            assert not low, f"{'dark' if dark else 'light'} theme, {sel}: text below 4.5:1: {low[:5]}"
        page.locator(".lm-MenuBar-itemLabel", has_text="Settings").click()
        page.locator(".lm-Menu-item", has_text="Theme").first.hover()
        page.get_by_role("menuitem", name="JupyterLab Light" if dark else "JupyterLab Dark", exact=True).click()
        page.wait_for_function(f"document.body.dataset.jpThemeLight === '{str(dark).lower()}'")
        page.locator("#jupyterlab-splash").wait_for(state="detached")
    page.evaluate("""() => { document.querySelector('#contrast-probe').remove();
        document.querySelector('#pai-submit [data-field-error=gpu]').textContent = ''; }""")


def test_jobs_panel_pages_through_more_jobs_than_a_page(page, lab, pai):
    """120 jobs (one array): the panel asks for 50 at a time with the total, and Next reaches the
    last (the oldest) job; no request asks for more than a page."""
    r = httpx.post(pai.url + "/api/v2/jobs", params={"array": "0-119"}, content=job_yaml("paged", ["true"]),
                   headers={"Authorization": f"Bearer {pai.alice}", "Content-Type": "text/yaml"}, timeout=60)
    assert r.status_code == 202, r.text
    asked: list[str] = []
    page.on("request", lambda req: asked.append(req.url) if "/pai/api/jobs?" in req.url else None)
    open_sidebar(page, "PAI jobs")
    jobs = page.locator("#pai-jobs")
    jobs.locator("select.pai-Filter-state").select_option("")
    jobs.locator("input.pai-Filter-name").fill("paged-")
    info = jobs.locator(".pai-PageInfo")
    page.wait_for_function("document.querySelector('#pai-jobs .pai-PageInfo').textContent === '1–50 of 120'")
    assert jobs.locator("tbody tr").count() == 50
    jobs.locator(".pai-PageNext").click()
    page.wait_for_function("document.querySelector('#pai-jobs .pai-PageInfo').textContent === '51–100 of 120'")
    jobs.locator(".pai-PageNext").click()
    page.wait_for_function("document.querySelector('#pai-jobs .pai-PageInfo').textContent === '101–120 of 120'")
    jobs.locator("tr[data-job='alice~paged-0']").wait_for()  # the first submitted, listed last
    assert jobs.locator(".pai-PageNext").is_disabled()
    assert info.text_content() == "101–120 of 120"
    shot(page, "10-jobs-panel-last-page")
    limits = {re.search(r"[?&]limit=(\d+)", u).group(1) for u in asked}
    assert limits == {"50"}, asked
    assert any("offset=100" in u for u in asked), asked
    jobs.locator("input.pai-Filter-name").fill("")
