"""Port numbers for a task, as OpenPAI hashes them.

OpenPAI (host networking) gives each task ports that depend only on the task's pod UID, the port
label and the port's position, so every peer can compute every other peer's ports without talking to
it. The same formula lives in the REST server and in the runtime; we keep it bit-for-bit.
"""

from __future__ import annotations

import hashlib

SCHEDULE_PORT_START = 15000
SCHEDULE_PORT_END = 40000


def hashed_port(pod_uid: str, label: str, k: int, start: int = SCHEDULE_PORT_START,
                end: int = SCHEDULE_PORT_END) -> int:
    """The ``k``-th port of ``label`` for the task whose pod UID is ``pod_uid``."""
    h = hashlib.md5(f"[{pod_uid}][{label}][{k}]".encode()).hexdigest()
    return (int(h[0:12], 16) + int(h[12:24], 16) + int(h[24:32], 16)) % (end - start) + start


def hashed_ports(pod_uid: str, label: str, count: int, start: int = SCHEDULE_PORT_START,
                 end: int = SCHEDULE_PORT_END) -> list[int]:
    """The ``count`` ports of ``label`` for a task: OpenPAI's ``[uid][label][k]`` md5 formula."""
    return [hashed_port(pod_uid, label, k, start, end) for k in range(count)]
