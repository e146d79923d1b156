"""``python -m pai_runtime TASK_DIR``: run one task attempt in the foreground, as a supervisor would.

For debugging a task from its directory alone, and for backends without a zygote. The exit status is
the task's exit code (codes above 255 are reported as 255 by the shell; ``exit.json`` has the real one).
"""

from __future__ import annotations

import argparse
import sys

from pai_runtime.supervisor import run_task_forwarding_signals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pai_runtime", description=__doc__)
    parser.add_argument("task_dir", help="task attempt directory holding spec.json")
    parser.add_argument("--notify", help="unix datagram socket to tell about the exit")
    args = parser.parse_args(argv)
    return run_task_forwarding_signals(args.task_dir, args.notify)


if __name__ == "__main__":
    code = main()
    sys.exit(code if 0 <= code <= 255 else 255)
