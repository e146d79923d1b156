"""Start or resume an NNI 3.0 experiment, detached; run with the NNI virtual environment's Python.

``python nni_driver.py start CONFIG.json PORT ID`` / ``python nni_driver.py resume WORKDIR PORT ID``
print ``{"pid": N}`` (the NNI manager). The caller sets ``HOME`` (NNI's experiment manifest lives
there) and ``NODE_OPTIONS=--require bind_localhost.js`` (the manager listens on 127.0.0.1 only).
Not imported by PAI Hub (NNI is not installed in its environment).
"""

from __future__ import annotations

import json
import sys

from nni.experiment import Experiment, ExperimentConfig, RunMode


def main(argv: list[str]) -> int:
    action, source, port, exp_id = argv[0], argv[1], int(argv[2]), argv[3]
    if action == "start":
        with open(source) as f:
            config = ExperimentConfig(**json.load(f))
        exp = Experiment(config, id=exp_id)
    else:
        exp = Experiment(None, id=exp_id)
        if not exp.has_checkpoint():
            print(f"experiment {exp_id} has no checkpoint to resume", file=sys.stderr)
            return 2
        exp.load_checkpoint()
        exp._action = "resume"
    exp.start(port, run_mode=RunMode.Detach)
    print(json.dumps({"pid": exp._proc.pid}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
