"""PaiSpawner's pure parts: the notebook's job, progress events, state (the I/O is in tests/e2e)."""

import sys

import yaml

from pai_spawner import profiles as P
from pai_spawner.spawner import progress_event
from tests.pai_spawner.spawners import spawner


def test_job_is_a_one_task_notebook_with_tokens_as_secrets():
    s = spawner("exp 1", allow_root=True, home_dir_template="/data/homes/{username}", pai_url="http://pai:9186")
    profile = P.normalize([{"display_name": "V100", "vc": "research", "sku": "V100", "gpu": 2, "cpu": 8,
                            "memoryMB": 32768}])[0]
    doc = yaml.safe_load(s.job_protocol("jupyter-exp-1-x", profile))
    role = doc["taskRoles"]["notebook"]
    assert role["instances"] == 1
    assert role["resourcePerInstance"] == {"cpu": 8, "memoryMB": 32768, "gpu": 2, "ports": {"jupyter": 1}}
    assert doc["defaults"]["virtualCluster"] == "research"
    assert doc["extras"]["paiHub"] == {"type": "notebook", "server": "exp 1", "hubUser": "alice", "profile": "v100"}
    assert doc["extras"]["hivedScheduler"]["taskRoles"]["notebook"]["skuType"] == "V100"
    text = "\n".join(role["commands"])
    assert "hub-secret" not in text  # only in secrets, which the server masks
    assert set(doc["secrets"].values()) == {"hub-secret"}
    assert "export JUPYTERHUB_API_TOKEN='<% $secrets.env_JUPYTERHUB_API_TOKEN %>'" in text
    assert "export JUPYTERHUB_SERVICE_PREFIX='/user/alice/exp 1/'" in text
    assert "export PAI_URL=http://pai:9186" in text
    assert "export PYTHONSTARTUP=" in text and "pai_magics/startup.py" in text  # kernels load %pai
    assert "cd /data/homes/alice" in text
    last = role["commands"][-1]
    assert last.startswith("exec ") and "jupyterhub-singleuser" in last
    assert "--ip=127.0.0.1 --port=$PAI_CONTAINER_HOST_jupyter_PORT_LIST --allow-root" in last


def test_no_allow_root_when_told_and_no_sku_extras_without_sku():
    s = spawner(allow_root=False)
    doc = yaml.safe_load(s.job_protocol("n", P.normalize([{"display_name": "cpu"}])[0]))
    assert "--allow-root" not in doc["taskRoles"]["notebook"]["commands"][-1]
    assert "hivedScheduler" not in doc["extras"]


def test_with_users_own_accounts_the_notebook_starts_in_home_not_in_the_data_directory():
    """Isolation on (issue 16): no home_dir_template, the server starts in $HOME (the account's home,
    set by the backend), and its command is an absolute path the sandbox exposes read-only."""
    s = spawner(notebook_in_home=True)
    commands = yaml.safe_load(s.job_protocol("n", P.normalize([{"display_name": "cpu"}])[0]))["taskRoles"][
        "notebook"]["commands"]
    assert commands[-2] == 'cd "$HOME"'
    assert not any("export HOME=" in c or "mkdir -p" in c for c in commands)
    program = commands[-1].split()[1]
    assert program.startswith("/") and program.endswith("jupyterhub-singleuser"), program
    assert program.startswith(sys.prefix), (program, sys.prefix)  # inside the exposed interpreter prefix


def test_without_notebook_in_home_nor_a_template_the_server_starts_in_the_task_directory():
    commands = yaml.safe_load(spawner().job_protocol("n", P.normalize([{"display_name": "cpu"}])[0]))[
        "taskRoles"]["notebook"]["commands"]
    assert not any(c.startswith("cd ") for c in commands)


def test_job_names_are_unique_and_valid():
    s = spawner("my server/ü")
    a, b = s._job_name(), s._job_name()
    assert a != b and a.startswith("jupyter-my-server---")
    assert all(ch.isalnum() or ch in "-_" for ch in a)


def test_state_round_trips_and_clears():
    s = spawner()
    s.framework, s.task_ip, s.task_port = "alice~jupyter-x", "127.0.0.1", 31000
    state = s.get_state()
    t = spawner()
    t.load_state(state)
    assert (t.framework, t.task_ip, t.task_port) == ("alice~jupyter-x", "127.0.0.1", 31000)
    t.clear_state()
    assert t.framework == "" and t.get_state().get("framework") is None


def test_progress_shows_the_waiting_reason():
    assert progress_event({"reason": "Waiting", "message": "waiting for GPUs: 0 of 2 free"}) == \
        {"progress": 20, "message": "Waiting: waiting for GPUs: 0 of 2 free"}
    assert progress_event({"reason": "JobSubmitted", "message": "job alice~x submitted"})["progress"] == 10
    assert progress_event({"reason": "TaskStarted", "message": "task notebook[0] started on vm"})["progress"] == 60
    assert progress_event({"reason": "TaskRunning", "message": "x"}) is None


def test_defaults_suit_queued_notebooks():
    s = spawner()
    assert s.start_timeout >= 300  # waiting in a VC's queue is normal
    assert "access:services!service=pai" in s.server_token_scopes
    assert callable(s.options_form) and callable(s.options_from_form)
    assert s.options_from_form({"profile": ["gpu-1"]}) == {"profile": "gpu-1"}
    assert s.options_from_form({}) == {}


def test_a_restored_server_does_not_wait_for_the_pai_service():
    """JupyterHub polls restored servers before it starts its managed services (PAI among them):
    poll must answer at once, not hold the hub's start-up until init_spawners_timeout. Found by the
    hub-restart test, whose hub took 13 s to start while a notebook ran."""
    import asyncio
    import socket
    import time

    with socket.socket() as sock:  # a port nothing listens on: the PAI service not started yet
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    s = spawner(pai_url=url)
    s.load_state({"framework": "alice~jupyter-x", "ip": "127.0.0.1", "port": 31000})
    started = time.monotonic()
    assert asyncio.run(s.poll()) is None  # running, as far as anyone can tell: the hub checks its URL
    assert time.monotonic() - started < s.pai_connect_timeout / 10
