"""JupyterHub configuration of the PAI Hub platform (``make run``; ``python -m pai_hub.hub``).

The launcher (``launcher.py``) writes the settings of this run to ``<data>/hub/launch.json`` and
points ``$PAI_HUB_LAUNCH`` at it; everything else is here. Override anything in your own file:
``python -m pai_hub.hub --config my_config.py`` (loaded last, the usual ``c.X.y = ...`` lines).
"""

# ruff: noqa: F821  (``get_config`` is given by JupyterHub when it loads this file)
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

launch = json.loads(Path(os.environ["PAI_HUB_LAUNCH"]).read_text())
hub_dir = Path(launch["hub_dir"])
data_dir = Path(launch["data_dir"])
service = launch["service_name"]
pai_url = f"http://127.0.0.1:{launch['pai_port']}"

c = get_config()

# -- the hub and its proxy ------------------------------------------------------------------------
c.JupyterHub.ip = launch["ip"]
c.JupyterHub.port = launch["port"]
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = launch["hub_port"]
c.JupyterHub.db_url = f"sqlite:///{hub_dir / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(hub_dir / "jupyterhub_cookie_secret")
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{launch['proxy_api_port']}"
c.ConfigurableHTTPProxy.command = [launch["chp"]]
c.ConfigurableHTTPProxy.pid_file = str(hub_dir / "chp.pid")
c.JupyterHub.cleanup_servers = False  # notebooks are PAI jobs: they outlive a hub restart

# -- who may log in: NativeAuthenticator (passwords; sign-up approved by an admin) ----------------
c.JupyterHub.authenticator_class = "pai_hub.hub.auth.PaiNativeAuthenticator"
c.Authenticator.admin_users = {launch["admin"]}
c.Authenticator.allow_all = True  # NativeAuthenticator itself lets in only approved accounts
c.PaiNativeAuthenticator.initial_users_file = str(hub_dir / "initial-users.json")
c.JupyterHub.load_groups = {g: {"users": users} for g, users in launch.get("groups", {}).items()}

# -- notebooks are PAI jobs -------------------------------------------------------------------------
c.JupyterHub.spawner_class = "pai"
c.PaiSpawner.pai_url = pai_url
c.PaiSpawner.pai_service_name = service
isolation = launch.get("isolation", "none")
if isolation == "none":  # one Unix user for everyone (a laptop): a directory per user, as before
    c.PaiSpawner.home_dir_template = str(data_dir / "homes" / "{username}")
else:  # each user's own account: the notebook starts in its HOME, never in the platform's data directory
    c.PaiSpawner.home_dir_template = ""
    c.PaiSpawner.notebook_in_home = True
c.Spawner.default_url = "/lab"
c.JupyterHub.allow_named_servers = True
c.JupyterHub.named_server_limit_per_user = 5

# -- services: the PAI control plane, and the idle culler ---------------------------------------------
pai_command = [sys.executable, "-m", "pai_hub.cli", "server", "--ip", "127.0.0.1", "--port", str(launch["pai_port"]),
               "--data-dir", str(data_dir), "--isolation", isolation]
if launch.get("simulated_gpus"):
    pai_command += ["--simulated-gpus", str(launch["simulated_gpus"])]
if launch.get("node_cpu"):
    pai_command += ["--node-cpu", str(launch["node_cpu"])]
c.JupyterHub.services = [{
    "name": service,
    "url": pai_url,
    "command": pai_command,
    "api_token": (hub_dir / "pai-service-token").read_text().strip(),
    "environment": {"PYTHONUNBUFFERED": "1"},
    "oauth_no_confirm": True,
    "display": True,
    "info": {"description": "PAI: jobs, virtual clusters, GPUs", "rest_api": f"{pai_url}/api/v2"},
}]
c.JupyterHub.load_roles = [
    # every user may use the PAI service (its pages through OAuth, its API with hub tokens)
    {"name": "user", "scopes": ["self", f"access:services!service={service}"]},
    # the PAI service reads users' admin flag and groups, to mirror them into its store
    {"name": "pai-service", "services": [service], "scopes": ["read:users", "read:groups", "list:users"]},
]
if launch.get("cull_timeout", 0) > 0:
    c.JupyterHub.services.append({
        "name": "idle-culler",
        "command": [sys.executable, "-m", "jupyterhub_idle_culler", f"--timeout={launch['cull_timeout']}",
                    f"--cull-every={launch['cull_every']}"],
    })
    c.JupyterHub.load_roles.append({"name": "idle-culler", "services": ["idle-culler"],
                                    "scopes": ["list:users", "read:users:activity", "read:servers",
                                               "delete:servers"]})

# -- the hub's pages link to the PAI pages -------------------------------------------------------------
c.JupyterHub.template_paths = [str(Path(__file__).parent / "templates")]
c.JupyterHub.template_vars = {"pai_prefix": f"/services/{service}/"}

for extra in launch.get("configs", []):
    load_subconfig(extra)
