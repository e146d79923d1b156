"""A real IPython kernel for tests (jupyter_client's KernelManager), and what its cells print."""

from __future__ import annotations

import os
import queue
from dataclasses import dataclass, field
from typing import Any

from jupyter_client import KernelManager

from tests.server import REPO


@dataclass
class Result:
    stdout: str = ""
    stderr: str = ""
    error: dict[str, Any] | None = None
    data: list[dict[str, Any]] = field(default_factory=list)  # display_data / execute_result bundles

    @property
    def text(self) -> str:
        return self.stdout + self.stderr


class Kernel:
    """``run(code)`` executes a cell and collects its output; ``messages`` keeps every iopub
    message seen (comm updates from widget threads included)."""

    def __init__(self, env: dict[str, str], cwd: str) -> None:
        self.km = KernelManager(kernel_name="python3")
        full = {**os.environ, **env, "PYTHONPATH": str(REPO)}
        for key in ("PYTEST_CURRENT_TEST", "PYTEST_ADDOPTS"):
            full.pop(key, None)
        self.km.start_kernel(env=full, cwd=cwd)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)
        self.messages: list[dict[str, Any]] = []

    def run(self, code: str, timeout: float = 90) -> Result:
        msg_id = self.kc.execute(code)
        out = Result()
        while True:
            try:
                msg = self.kc.get_iopub_msg(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"the cell did not finish in {timeout}s: {code!r}; so far {out}") from None
            self.messages.append(msg)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                if content["name"] == "stdout":
                    out.stdout += content["text"]
                else:
                    out.stderr += content["text"]
            elif kind == "error":
                out.error = content
            elif kind in ("display_data", "execute_result"):
                out.data.append(content["data"])
            elif kind == "status" and content["execution_state"] == "idle":
                return out

    def comm_values(self, comm_id: str) -> list[Any]:
        """Every ``value`` the kernel sent to the front end for the widget model ``comm_id``."""
        return [m["content"]["data"]["state"]["value"] for m in self.messages
                if m["msg_type"] == "comm_msg" and m["content"].get("comm_id") == comm_id
                and "value" in (m["content"].get("data", {}).get("state") or {})]

    def stop(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)
