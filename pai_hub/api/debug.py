"""Debug reservations and debug terminals (PAI Hub extension; OpenPAI v0.x's "isDebug", revived).

``GET /jobs/{fw}/debug`` shows what is kept and until when; ``DELETE`` releases it early (its GPUs
go back to the VC). ``/jobs/{fw}/tasks/{role}/{index}/terminal`` is a websocket to a shell in the
task's environment, served by terminado (the terminals of Jupyter itself) and speaking its JSON
messages: ``["stdin", text]`` and ``["set_size", rows, cols]`` in; ``["setup", {}]`` once, then
``["stdout", text]`` and, when the shell ends, ``["disconnect", 1]`` out. The shell's output is
decoded incrementally, so a character split across two reads of the PTY arrives whole.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from typing import Any

from terminado import TermSocket
from terminado.management import PtyWithClients, TermManagerBase
from tornado import web
from tornado.ioloop import IOLoop

from . import views
from .base import parse_int
from .errors import ApiError
from .jobs import JobAccess


class DebugHandler(JobAccess):
    async def get(self, framework_name: str) -> None:
        job = await self.find_job(framework_name)
        view = views.debug_view(self.current_tasks(job))
        if view is None:
            raise ApiError(404, "NoDebugReservationError", f"Job {framework_name} has no debug reservation.")
        self.send(view)

    async def delete(self, framework_name: str) -> None:
        job = await self.find_job(framework_name)
        released = await self.controller.call(lambda machine, now: machine.release_debug(job.id, now))
        if not released:
            raise ApiError(404, "NoDebugReservationError", f"Job {framework_name} has no debug reservation.")
        self.send({"message": f"debug reservation of {framework_name} released"})


class TaskTerminals(TermManagerBase):
    """The server's debug terminals: terminado's reading, writing and ending of terminals, for
    terminals the backends open (one per websocket) instead of a shell command of the manager's."""

    def __init__(self) -> None:
        super().__init__(shell_command=[])
        self._ending: set[asyncio.Future[bool]] = set()

    def attach(self, terminal: PtyWithClients, client: TermSocket) -> None:
        """Send the terminal's output to ``client`` from now on."""
        terminal.clients.append(client)
        self.start_reading(terminal)

    def on_eof(self, ptywclients: PtyWithClients) -> None:
        """As terminado's, but the shell is closed and reaped in the I/O thread: closing waits for the
        process, which must not hold the event loop."""
        fd = ptywclients.ptyproc.fd
        self.ptys_by_fd.pop(fd, None)
        IOLoop.current().remove_handler(fd)
        self.blocking_io_executor.submit(ptywclients.ptyproc.close)

    def client_disconnected(self, websocket: Any) -> None:
        """The websocket closed: hang up the shell's process group, then end it if it lingers."""
        terminal = websocket.terminal
        if terminal is None or terminal.clients:
            return
        try:
            terminal.killpg(signal.SIGHUP)
        except OSError:
            pass  # already gone
        ending = asyncio.ensure_future(terminal.terminate(force=True))
        self._ending.add(ending)
        ending.add_done_callback(self._ending.discard)


def task_terminals(application: web.Application) -> TaskTerminals:
    """The application's one terminal manager, made on first use."""
    terminals = application.settings.get("pai_terminals")
    if terminals is None:
        terminals = application.settings["pai_terminals"] = TaskTerminals()
    return terminals


class TerminalHandler(JobAccess, TermSocket):
    """A shell in a task that is running, or kept for debugging (owner or admin only)."""

    def initialize(self) -> None:  # type: ignore[override]
        TermSocket.initialize(self, task_terminals(self.application))

    async def get(self, framework_name: str, role: str, index: str) -> None:  # type: ignore[override]
        task_index = parse_int(index, "taskIndex")
        job = await self.find_job(framework_name)
        task = next((t for t in self.current_tasks(job) if t.role == role and t.task_index == task_index), None)
        if task is None:
            raise ApiError(404, "NoTaskError", f"Job {framework_name} has no task {role}/{index}.")
        debugging = task.debug_until is not None and task.debug_until > time.time()
        if not (debugging or task.launch_state == "running"):
            raise ApiError(409, "TaskNotAvailableError",
                           f"task {role}/{index} is {task.state} and not kept for debugging; ask for "
                           "extras.debugReservation: {minutes: N} to keep a failed task")
        self._slot = self.open_stream("terminal")  # 429 past the caller's open streams
        try:
            try:  # a process to start, or an exec session to open: not on the event loop
                self.terminal = await self.blocking(self.controller.backend.exec_shell, task.task_id)
            except (KeyError, NotImplementedError) as exc:
                raise ApiError(409, "TaskNotAvailableError", f"no shell for task {role}/{index}: {exc}") from None
            await super().get(framework_name, role, index)
        finally:
            if self.ws_connection is None:  # refused, or not a websocket request after all
                self._release_slot()
        if self.ws_connection is None and self.terminal is not None:
            self.terminal.killpg(signal.SIGHUP)
            self.terminal = None

    def _release_slot(self) -> None:
        slot = getattr(self, "_slot", None)
        if slot is not None:
            slot.release()

    def on_close(self) -> None:
        """The websocket closed: its slot is free again, then terminado ends the shell."""
        self._release_slot()
        super().on_close()

    def open(self, *args: Any) -> None:  # type: ignore[override]
        assert self.terminal is not None
        self.send_json_message(["setup", {}])
        self.term_manager.attach(self.terminal, self)

    def on_message(self, message: str | bytes) -> Any:
        """terminado's, for well-formed messages to a live shell; anything else is ignored."""
        try:
            command = json.loads(message)
            kind = command[0]
            valid = (kind == "stdin" and isinstance(command[1], str)) or (
                kind == "set_size" and all(isinstance(n, int) and n > 0 for n in command[1:3]) and len(command) >= 3)
        except (ValueError, TypeError, IndexError, KeyError):
            return None
        if not valid or self.terminal is None:
            return None
        return super().on_message(message)
