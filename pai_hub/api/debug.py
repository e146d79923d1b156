"""Debug reservations and debug terminals (PAI Hub extension; OpenPAI v0.x's "isDebug", revived).

``GET /jobs/{fw}/debug`` shows what is kept and until when; ``DELETE`` releases it early (its GPUs
go back to the VC). ``/jobs/{fw}/tasks/{role}/{index}/terminal`` is a websocket to a shell in the
task's environment, speaking terminado's JSON messages (``["stdin", text]``, ``["set_size", rows,
cols]`` in; ``["stdout", text]``, ``["disconnect", 1]`` out) so JupyterLab's terminal can use it.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import struct
import termios
import time
from typing import Any

from tornado import websocket

from ..backends.base import Shell
from . import views
from .errors import ApiError
from .jobs import JobAccess


class DebugHandler(JobAccess):
    def get(self, framework_name: str) -> None:
        job = self.find_job(framework_name)
        view = views.debug_view(self.current_tasks(job))
        if view is None:
            raise ApiError(404, "NoDebugReservationError", f"Job {framework_name} has no debug reservation.")
        self.send(view)

    async def delete(self, framework_name: str) -> None:
        job = self.find_job(framework_name)
        released = await self.pai.controller.call(lambda machine, now: machine.release_debug(job.id, now))
        if not released:
            raise ApiError(404, "NoDebugReservationError", f"Job {framework_name} has no debug reservation.")
        self.send({"message": f"debug reservation of {framework_name} released"})


class TerminalHandler(JobAccess, websocket.WebSocketHandler):
    """A shell in a task that is running, or kept for debugging (owner or admin only)."""

    shell: Shell | None = None

    async def get(self, framework_name: str, role: str, index: str) -> None:  # type: ignore[override]
        job = self.find_job(framework_name)
        task = next((t for t in self.current_tasks(job) if t.role == role and t.task_index == int(index)), None)
        if task is None:
            raise ApiError(404, "NoTaskError", f"Job {framework_name} has no task {role}/{index}.")
        debugging = task.debug_until is not None and task.debug_until > time.time()
        if not (debugging or task.launch_state == "running"):
            raise ApiError(409, "TaskNotAvailableError",
                           f"task {role}/{index} is {task.state} and not kept for debugging; ask for "
                           "extras.debugReservation: {minutes: N} to keep a failed task")
        try:
            self.shell = self.pai.controller.backend.exec_shell(task.task_id)
        except (KeyError, NotImplementedError) as exc:
            raise ApiError(409, "TaskNotAvailableError", f"no shell for task {role}/{index}: {exc}") from None
        await super().get(framework_name, role, index)

    def open(self, *args: Any) -> None:
        assert self.shell is not None
        asyncio.get_running_loop().add_reader(self.shell.fd, self._pump)

    def _pump(self) -> None:
        assert self.shell is not None
        try:
            data = os.read(self.shell.fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # the shell ended
            self._end()
            return
        self.write_message(json.dumps(["stdout", data.decode("utf-8", "replace")]))

    def on_message(self, message: str | bytes) -> None:
        if self.shell is None:
            return
        try:
            kind, *args = json.loads(message)
        except (ValueError, TypeError):
            return
        if kind == "stdin" and args:
            os.write(self.shell.fd, str(args[0]).encode())
        elif kind == "set_size" and len(args) >= 2:
            fcntl.ioctl(self.shell.fd, termios.TIOCSWINSZ, struct.pack("HHHH", int(args[0]), int(args[1]), 0, 0))

    def _end(self) -> None:
        if self.shell is not None:
            asyncio.get_running_loop().remove_reader(self.shell.fd)
            self.shell.close()
            self.shell = None
            try:
                self.write_message(json.dumps(["disconnect", 1]))
                self.close()
            except websocket.WebSocketClosedError:
                pass

    def on_close(self) -> None:
        self._end()
