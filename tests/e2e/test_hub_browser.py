"""The platform in a browser: log in, pick a profile, wait (with the scheduler's reason) while the
GPUs are full, land in JupyterLab, stop; the hub pages for a user and for an admin; 403 for a
non-admin. Screenshots of every page go to test-artifacts/e2e/."""

from __future__ import annotations

import re
import time

import pytest

from tests.e2e.conftest import login
from tests.e2e.hub import PASSWORDS, notebook_jobs, wait_job
from tests.server import job_yaml

pytestmark = pytest.mark.slow


def test_spawn_waits_for_gpus_then_lands_in_lab_and_stops(hub, browser, shot):
    admin = hub.pai()
    # both simulated GPUs taken: the notebook must wait, and say why
    r = admin.post("/api/v2/jobs", content=job_yaml("gpu-blocker", ["sleep 600"], gpu=2),
                   headers={"Content-Type": "text/yaml"})
    assert r.status_code == 202, r.text
    wait_job(admin, "admin~gpu-blocker", {"RUNNING"})

    context, page = login(browser, hub, "alice", PASSWORDS["alice"])
    try:
        page.goto(hub.url + "/hub/spawn")
        page.wait_for_selector("#pai-profiles")
        shot(page, "01-spawn-options-form")
        labels = page.inner_text("#pai-profiles")
        assert "CPU notebook" in labels and "1 GPU" in labels
        assert "Research GPU" not in labels  # alice may not use VC research

        page.check("#profile-gpu-1")
        page.click("#spawn_form button[type=submit]")
        page.wait_for_url(re.compile(r".*/spawn-pending/alice.*"))
        page.click("#progress-details summary")
        page.wait_for_selector("#progress-log >> text=/Waiting: .* free/")
        shot(page, "02-spawn-pending-waiting-for-gpus")
        assert "Waiting" in page.inner_text("#progress-message") or "Waiting" in page.inner_text("#progress-log")

        admin.put("/api/v2/jobs/admin~gpu-blocker/executionType", json={"value": "STOP"})
        page.wait_for_url(re.compile(r".*/user/alice/lab.*"), timeout=90_000)
        page.wait_for_selector(".jp-LabShell, #jp-main-dock-panel", timeout=60_000)
        time.sleep(1.5)  # let Lab paint its launcher
        shot(page, "03-jupyterlab")

        [job] = [j for j in notebook_jobs(admin, "alice") if j["state"] == "RUNNING"]
        assert job["totalGpuNumber"] == 1 and job["virtualCluster"] == "default"
        # the PAI panels of the hub-spawned Lab: pai_extension calls PAI as alice (her server's hub
        # token), so her notebook job is in her jobs panel and the status bar counts its GPU
        page.locator(".lm-TabBar-tab[title='PAI jobs']").click()
        page.locator(f"#pai-jobs tr[data-job='alice~{job['name']}']").wait_for(timeout=30_000)
        page.wait_for_function("document.querySelector('.pai-Status')?.textContent.includes('1 GPU')",
                               timeout=30_000)
        shot(page, "03b-jupyterlab-pai-jobs")

        page.goto(hub.url + "/hub/home")
        page.wait_for_selector("#stop")
        shot(page, "04-hub-home-running")
        page.click("#stop")
        page.wait_for_selector("#start", state="visible", timeout=60_000)
        shot(page, "05-hub-home-stopped")
        wait_job(admin, f"alice~{job['name']}", {"STOPPED"})
    finally:
        context.close()


def test_pages_for_a_user(hub, browser, shot):
    context, page = login(browser, hub, "alice", PASSWORDS["alice"])
    try:
        page.goto(hub.url + "/hub/home")
        page.wait_for_selector("#pai-nav-home")
        assert page.locator("#pai-nav-vcs").count() == 0  # no admin links for alice
        page.click("#pai-nav-home")
        page.wait_for_selector("#pai-jobs")
        shot(page, "10-pai-home-user")
        text = page.inner_text("body")
        for section in ("My notebooks", "My jobs", "My experiments", "Quota left in my virtual clusters"):
            assert section in text
        assert "No experiments yet" in text
        page.goto(hub.url + "/services/pai/?state=STOPPED")
        shot(page, "11-pai-home-user-filtered")

        for path in ("admin/virtual-clusters", "admin/nodes", "admin/usage"):
            resp = page.goto(hub.url + "/services/pai/" + path)
            assert resp.status == 403, path
        shot(page, "12-admin-page-403-for-user")
    finally:
        context.close()


def test_pages_for_an_admin(hub, browser, shot):
    with hub.pai(hub.user_token("bob")) as bob:  # bob's first call mirrors his hub group 'research'
        me = bob.get("/api/v2/users/me")
        assert me.status_code == 200, me.text
        assert "research" in me.json()["grouplist"]
    context, page = login(browser, hub, "admin", hub.admin_password)
    try:
        page.goto(hub.url + "/hub/home")
        page.wait_for_selector("#pai-nav-vcs")
        shot(page, "20-hub-home-admin-nav")
        for path, name, marker in (("", "21-pai-home-admin", "#pai-jobs"),
                                   ("admin/virtual-clusters", "22-admin-virtual-clusters", "#pai-groups-table"),
                                   ("admin/nodes", "23-admin-nodes", "h1"),
                                   ("admin/usage", "24-admin-usage", "#pai-usage-table")):
            resp = page.goto(hub.url + "/services/pai/" + path)
            assert resp.status == 200, path
            page.wait_for_selector(marker)
            shot(page, name)
        # usage lists alice, who ran a notebook in the first test of this module (when it ran)
        assert "alice" in page.inner_text("#pai-usage-table")

        # group access: grant VC default to the mirrored hub group 'research' and back, through the form
        page.goto(hub.url + "/services/pai/admin/virtual-clusters")
        row = page.locator("#pai-groups-table tr", has_text="research").first
        row.locator("input[value=default]").check()
        row.locator("button[type=submit]").click()
        page.wait_for_selector("#pai-msg")
        assert "research now grants: default" in page.inner_text("#pai-msg")
        shot(page, "25-admin-group-access-saved")
        with hub.pai() as c:
            group = c.get("/api/v2/groups/research").json()
            assert "default" in group["extension"]["acls"]["virtualClusters"]
    finally:
        context.close()


def test_nothing_is_visible_before_login(hub, browser, shot):
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(90_000)
    page.set_default_navigation_timeout(90_000)
    try:
        page.goto(hub.url + "/services/pai/admin/nodes")
        page.wait_for_url(re.compile(r".*/hub/login.*"))
        shot(page, "00-login-page")
        assert "PAI" not in page.inner_text("body").replace("JupyterHub", "")
    finally:
        context.close()


def test_admin_quota_and_group_access_change_a_users_options_form(hub, browser, shot):
    """Issue 5: an admin changes a VC's quota and a group's VC access on the hub pages, and a user's
    options form follows: the GPU node moves from VC default to a new VC research, research is
    granted to everyone's group, and alice is offered the Research profile."""
    with hub.pai() as c:
        before = c.get("/api/v2/virtual-clusters/default").json()["cells"]
    gpu_cell = next(t for t in before if not t.startswith("CPU"))
    context, page = login(browser, hub, "admin", hub.admin_password)
    try:
        page.goto(hub.url + "/services/pai/admin/virtual-clusters")
        form = page.locator(".pai-quota-form[data-vc=default]")
        form.locator(f"input[name='cell:{gpu_cell}']").fill("0")
        form.locator("button[type=submit]").click()
        page.wait_for_selector("#pai-msg")
        # a new VC research holding the GPU node
        form = page.locator("#pai-new-vc-form")
        form.locator("input[name=vc]").fill("research")
        form.locator("input[name=new_cell]").fill(gpu_cell)
        form.locator("input[name=new_value]").fill("1")
        form.locator("button[type=submit]").click()
        page.wait_for_selector("#pai-msg")
        assert "quota of research updated" in page.inner_text("#pai-msg"), page.inner_text("body")[:500]
        shot(page, "26-admin-quota-changed")
        row = page.locator("#pai-groups-table tr").filter(
            has=page.locator("td:first-child", has_text=re.compile(r"^default$")))
        row.locator("input[value=research]").check()
        row.locator("button[type=submit]").click()
        page.wait_for_selector("#pai-msg")
        assert "default now grants:" in page.inner_text("#pai-msg") and "research" in page.inner_text("#pai-msg")
    finally:
        context.close()
    context, page = login(browser, hub, "alice", PASSWORDS["alice"])
    try:
        page.goto(hub.url + "/hub/spawn")
        page.wait_for_selector("#pai-profiles")
        assert "Research GPU" in page.inner_text("#pai-profiles")
        shot(page, "27-options-form-after-grant")
    finally:
        context.close()
        with hub.pai() as c:  # put the cluster back as the module's other tests expect it
            c.put("/api/v2/groups/default", json={"virtualClusters": ["default"]})
            c.put("/api/v2/virtual-clusters/research", json={"cells": {}})
            c.put("/api/v2/virtual-clusters/default", json={"cells": before})
