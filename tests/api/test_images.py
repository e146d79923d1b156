"""``dockerImage`` on a backend that does not apply images: recorded, shown as not applied, warned once.

The local backend runs commands in the node's own environment; before, nothing told the user that
``python:3.11`` was ignored. Here a real ``pai server`` (local backend) and the real ``pai`` command.
"""

from __future__ import annotations

import os
import subprocess
import sys
from types import SimpleNamespace

from pai_hub.api import images
from pai_hub.backends.base import Backend
from tests.server import job_yaml, wait_state


def test_submit_and_dry_run_carry_one_warning(server):
    with server.client() as c:
        r = c.post("/api/v2/jobs", params={"dryRun": "true"}, content=job_yaml("img-dry", ["true"], instances=3))
        assert r.status_code == 200, r.text
        assert len(r.json()["warnings"]) == 1
        warning = r.json()["warnings"][0]
        assert "python:3.11" in warning and "not applied" in warning and "local" in warning
        r = c.post("/api/v2/jobs", content=job_yaml("img", ["true"]))
        assert r.status_code == 202 and r.json()["warnings"] == [warning]
        r = c.post("/api/v2/jobs", params={"array": "0-2"}, content=job_yaml("img-array", ["true"]))
        assert r.status_code == 202, r.text
        assert r.json()["warnings"] == [warning]


def test_job_detail_says_the_image_was_not_applied(server):
    with server.client() as c:
        assert c.post("/api/v2/jobs", content=job_yaml("img-detail", ["true"])).status_code == 202
        detail = wait_state(c, "admin~img-detail", {"SUCCEEDED"})
        assert detail["images"]["taskRoles"] == {"worker": "python:3.11"}
        assert detail["images"]["applied"] is False
        assert "not applied on this backend (local)" in detail["images"]["notice"]
        assert "python:3.11" in c.get("/api/v2/jobs/admin~img-detail/config").text  # recorded as submitted


def test_pai_submit_prints_the_warning(server):
    env = {**os.environ, "PAI_URL": server.url, "PAI_TOKEN": server.admin_token}
    path = server.data_dir.parent / "img-cli.yaml"
    path.write_text(job_yaml("img-cli", ["true"]))
    for extra in (["--dry-run"], []):
        run = subprocess.run([sys.executable, "-m", "pai_client.cli", "job", "submit", str(path), *extra],
                             capture_output=True, text=True, env=env, timeout=60)
        assert run.returncode == 0, run.stderr
        assert run.stderr.count("warning: dockerImage python:3.11") == 1, run.stderr
    assert "submitted admin~img-cli" in run.stdout


def test_a_backend_that_applies_images_gets_no_warning():
    config = {"prerequisites": [{"name": "img", "type": "dockerimage", "uri": "pytorch:2.3"}],
              "taskRoles": {"a": {"dockerImage": "img"}, "b": {"dockerImage": "img"}}}
    kube = SimpleNamespace(name="kubernetes", applies_images=True)
    assert images.submit_warnings(config, kube) == []
    assert images.images_view(config, kube) == {"taskRoles": {"a": "pytorch:2.3", "b": "pytorch:2.3"},
                                                "applied": True, "notice": None}
    local = SimpleNamespace(name="local")  # no attribute: not applied
    assert len(images.submit_warnings(config, local)) == 1
    assert Backend.applies_images is False


def test_a_warning_about_many_images_stays_short():
    config = {"prerequisites": [{"name": f"i{n}", "type": "dockerimage", "uri": f"image-{n}:1"} for n in range(500)],
              "taskRoles": {f"r{n}": {"dockerImage": f"i{n}"} for n in range(500)}}
    [warning] = images.submit_warnings(config, SimpleNamespace(name="slurm"))
    assert "and 495 more" in warning and len(warning) < 400
