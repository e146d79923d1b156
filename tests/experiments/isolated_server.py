"""``pai server`` whose experiments service gets the isolation policy in ``PAI_TEST_EXPERIMENT_ISOLATION``
(JSON), whatever the rest of the server runs with: the experiments' isolation tests need trials that
still run as the platform (the NNI venv may not be readable by other accounts) and managers guarded as
in ``users`` mode. Run as ``python -m tests.experiments.isolated_server server ...``."""

from __future__ import annotations

import os
import sys

import pai_hub.app as app
from pai_hub.cli import main
from pai_runtime.isolation import IsolationPolicy

_policy = IsolationPolicy.from_json(os.environ["PAI_TEST_EXPERIMENT_ISOLATION"])
_start = app.start_experiments


def _start_isolated(*args, **kwargs):
    kwargs["isolation"] = _policy
    return _start(*args, **kwargs)


app.start_experiments = _start_isolated

if __name__ == "__main__":
    sys.exit(main())
