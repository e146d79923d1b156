"""The magics and widgets in a real IPython kernel against a real ``pai server``: the kernel loads
them itself (the ``PYTHONSTARTUP`` hook a spawner sets), submits a gang job, waits, shows logs,
stops another job, and its job view's widget state follows the job."""

from __future__ import annotations

import json
import os

import pytest

import pai_magics
from tests.pai_magics.kernel import Kernel
from tests.server import running_server


@pytest.fixture(scope="module")
def pai(tmp_path_factory):
    with running_server(tmp_path_factory.mktemp("nb")) as srv:
        srv.token = srv.add_user("nbuser")
        yield srv


@pytest.fixture(scope="module")
def kernel(pai, tmp_path_factory):
    cwd = tmp_path_factory.mktemp("cwd")
    (cwd / "helper.py").write_text("GREETING = 'hello from a working file'\n")
    k = Kernel({"PAI_URL": pai.url, "PAI_TOKEN": pai.token, **pai_magics.autoload_env()}, str(cwd))
    yield k
    k.stop()


def test_the_kernel_loaded_the_magics_by_itself(kernel):
    r = kernel.run("%pai whoami")
    assert r.error is None and r.stdout.startswith("nbuser at http://127.0.0.1:"), r


def test_gang_job_from_a_cell_runs_in_the_kernels_python_with_its_files_and_shows_logs(kernel):
    cell = ("%%pai submit --name gang --instances 2 --gpu 1 --param GREETING_SUFFIX=! --file helper.py --wait\n"
            "import os, sys, helper\n"
            "print(helper.GREETING + os.environ['GREETING_SUFFIX'], 'task', os.environ['PAI_TASK_INDEX'],\n"
            "      'gpus', os.environ['CUDA_VISIBLE_DEVICES'], 'python', sys.executable)\n")
    r = kernel.run(cell)
    assert r.error is None, r
    assert "submitted nbuser~gang (2 tasks, one gang)" in r.stdout
    assert "nbuser~gang: SUCCEEDED" in r.stdout
    exe = kernel.run("import sys; print(sys.executable)").stdout.strip()
    for index in (0, 1):
        log = kernel.run(f"%pai logs gang --task worker/{index} --log stdout").stdout
        assert f"hello from a working file! task {index} gpus" in log and f"python {exe}" in log, log
    gpus = {kernel.run(f"%pai logs gang --task worker/{i} --log stdout").stdout.split("gpus ")[1].split()[0]
            for i in (0, 1)}
    assert len(gpus) == 2  # a GPU each
    r = kernel.run("import pai_magics; v = pai_magics.last_view(); "
                   "print(v.state.value, v.gpus.value.split(':')[0], v.stop_button.disabled)")
    assert r.stdout.split() == ["SUCCEEDED", "2", "True"]


def test_stop_another_job(kernel):
    r = kernel.run("%%pai submit --name sleeper\nimport time\ntime.sleep(120)\n")
    assert "submitted nbuser~sleeper" in r.stdout and r.data, r  # the job view is the cell's output
    assert "application/vnd.jupyter.widget-view+json" in r.data[-1]
    r = kernel.run("%pai stop sleeper")
    assert r.stdout.strip() == "stopping nbuser~sleeper"
    assert kernel.run("%pai wait sleeper --timeout 60").stdout.strip() == "nbuser~sleeper: STOPPED"
    r = kernel.run("%pai jobs --text --state stopped")
    *rows, count = r.stdout.splitlines()[1:]
    assert [line.split()[0] for line in rows] == ["sleeper"] and count == "jobs 1–1 of 1"


def test_the_job_views_widget_state_follows_the_job(kernel):
    r = kernel.run("%%pai submit --name mover\nimport time\nprint('working', flush=True)\ntime.sleep(2)\n"
                   "print('done')\n")
    assert r.error is None, r
    model = r.data[-1]["application/vnd.jupyter.widget-view+json"]["model_id"]
    r = kernel.run("import json, pai_magics\nv = pai_magics.last_view()\nsnap = v.wait(60)\n"
                   "print(json.dumps({'state': v.state.value, 'seen': v.states_seen, 'log': v.log_tail.value,"
                   " 'state_model': v.state.model_id, 'view_model': v.model_id, 'events': v.events_seen}))")
    got = json.loads(r.stdout)
    assert got["view_model"] == model
    assert got["state"] == "SUCCEEDED" and got["seen"][-1] == "SUCCEEDED" and len(got["seen"]) >= 2, got
    assert "RUNNING" in got["seen"] and got["events"] > 0
    assert got["log"].split() == ["working", "done"]
    # the front end was told: the Label's comm carried the states, in order
    sent = kernel.comm_values(got["state_model"])
    assert "RUNNING" in sent and sent[-1] == "SUCCEEDED", sent
    assert sent.index("RUNNING") < sent.index("SUCCEEDED")


def test_failure_analysis_and_a_debug_shell_in_the_widget(kernel):
    r = kernel.run("%%pai submit --name broken --gpu 1 --debug-minutes 5 --wait\nimport os\n"
                   "print('cwd', os.getcwd(), flush=True)\nraise SystemExit(3)\n")
    assert "nbuser~broken: FAILED" in r.stdout, r
    r = kernel.run("import pai_magics; v = pai_magics.last_view(); print(v.failure.value)")
    assert "kept for debugging" in r.stdout and "%pai debug nbuser~broken" in r.stdout
    cwd = kernel.run("%pai logs broken --log stdout").stdout.split("cwd ")[1].split()[0]
    r = kernel.run("t = %pai debug broken\n"
                   "t.send('echo GPU=$CUDA_VISIBLE_DEVICES; pwd; exit\\n')\n"
                   "assert t.wait_for(r'GPU=\\d'), t.text\nt.closed.wait(10)\nprint(repr(t.screen.value))")
    assert r.error is None, r
    screen = r.stdout
    gpu = kernel.run("print(pai_magics.last_view().snapshot.tasks[0].gpus)").stdout.strip()
    assert f"GPU={gpu}" in screen and cwd in screen
    assert kernel.run("%pai release broken").stdout.startswith("released")


def test_errors_are_one_line(kernel):
    r = kernel.run("%%pai submit --instancez 2\nprint(1)\n")
    lines = [line for line in r.text.splitlines() if line.strip()]
    assert "Traceback" not in r.text and (r.error is None or not r.error.get("traceback", [])[1:])
    assert len(lines) == 1 and "UsageError: %%pai submit: unrecognized arguments: --instancez 2" in lines[0], r
    r = kernel.run("%pai status no-such-job")
    assert r.stderr.strip() == "pai: NoJobError: Job nbuser~no-such-job is not found." and r.error is None, r
    r = kernel.run("%pai logs gang --task worker/9")
    assert r.stderr.strip().startswith("pai: NoTaskLogError:") and r.error is None


def test_jobs_table_filters(kernel):
    r = kernel.run("t = %pai jobs --state SUCCEEDED\nprint(sorted(j['name'] for j in t.rows))\n"
                   "t.state_filter.value = 'STOPPED'\nprint(sorted(j['name'] for j in t.rows), t.count.value)")
    first, second = r.stdout.splitlines()
    assert "'gang'" in first and "'sleeper'" not in first
    assert second == "['sleeper'] jobs 1–1 of 1"


def test_kernel_without_hook_does_not_load_magics(pai, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONSTARTUP"}
    k = Kernel({**env, "PAI_URL": pai.url, "PAI_TOKEN": pai.token, "PYTHONSTARTUP": ""}, str(tmp_path))
    try:
        assert "Line magic function `%pai` not found" in k.run("%pai whoami").text
        r = k.run("%load_ext pai_magics\n%pai whoami")
        assert r.stdout.startswith("nbuser"), r
    finally:
        k.stop()
