"""``GET /jobs/{fw}/ssh``: where to ssh into a job's tasks, when the job uses the ``ssh`` plugin.

OpenPAI's REST server always answers 404 ``NoJobSshInfoError`` here (its ssh plugin's keys live in
the user's profile). A job whose ``extras.com.microsoft.pai.runtimeplugin`` has ``ssh`` gets its
tasks' ssh endpoints (the task's IP and its ``ssh`` port, where the plugin starts ``sshd``) and how
to log in: the user's own key when ``userssh`` gave one, else the job's key pair, which each task
keeps in ``ssh/id_job`` (never sent over the API). Any other job answers OpenPAI's 404.
"""

from __future__ import annotations

from typing import Any

from .errors import ApiError
from .jobs import JobAccess

PLUGINS = "com.microsoft.pai.runtimeplugin"


def ssh_plugin(protocol: dict[str, Any]) -> dict[str, Any] | None:
    """The job's ``ssh`` runtime plugin entry, or None."""
    extras = protocol.get("extras") or {}
    plugins = extras.get(PLUGINS) if isinstance(extras, dict) else None
    for plugin in plugins if isinstance(plugins, list) else []:
        if isinstance(plugin, dict) and plugin.get("plugin") == "ssh":
            return plugin
    return None


class SshInfoHandler(JobAccess):
    async def get(self, framework_name: str) -> None:
        job = await self.find_job(framework_name)
        plugin = ssh_plugin(job.protocol)
        if plugin is None:
            raise ApiError(404, "NoJobSshInfoError", f"SSH info of job {framework_name} is not found.")
        params = plugin.get("parameters") or {}
        roles = plugin.get("taskroles")
        _, tasks = await self.status(job)
        containers = [
            {"id": t.task_uid, "taskRoleName": t.role, "taskIndex": t.task_index, "sshIp": t.ip,
             "sshPort": str(t.ports["ssh"][0]) if t.ports.get("ssh") else None, "taskState": str(t.state)}
            for t in sorted(tasks, key=lambda t: (t.role, t.task_index))
            if not isinstance(roles, list) or t.role in roles
        ]
        userssh = params.get("userssh") if isinstance(params.get("userssh"), dict) else {}
        self.send({"containers": containers,
                   "keyPair": {"jobssh": params.get("jobssh", True) is not False,
                               "userKey": bool(userssh.get("value")),
                               "privateKeyFileName": "id_job", "publicKeyFileName": "id_job.pub",
                               "folderPath": "ssh (in each task's working directory)"}})
