"""The exit codes the platform itself gives a task attempt, in OpenPAI's numbering — one table.

A task's own exit code is whatever its command returned (death by signal N is 128+N, as bash reports
it). The codes below are the ones the runtime, the backends and the orchestrator assign when the
command's own code does not tell the story. Their meanings (name, category, retry policy) are in
OpenPAI's exit spec (``data/k8s-job-exit-spec.yaml``, read by :mod:`pai_runtime.exitspec`); the table
lives in the runtime, the lowest layer, so that the server imports it and nothing defines them twice.
"""

from __future__ import annotations

import signal

#: A task ended by the platform's SIGTERM (stopped, cancelled, its pod deleted), as bash reports it.
EXIT_STOPPED = 128 + signal.SIGTERM
#: PrerequisiteCallbackFailed (PAI Hub): a prerequisite with ``failurePolicy: fail`` failed.
EXIT_PREREQUISITE_FAILED = 240
#: PAIRuntimeUnknownFailed: the command failed and no failure rule matched.
EXIT_UNKNOWN_FAILURE = 255
#: PAIRuntimeExitAbnormally: the runtime itself could not run the command.
EXIT_RUNTIME_FAILURE = 256
#: PodCreationPermanentError: the backend could not start the task.
EXIT_START_FAILED = -200
#: StopFrameworkRequested: a user or admin stopped the job.
EXIT_STOP_REQUESTED = -210
#: FrameworkAttemptCompletion: killed because its job attempt had completed.
EXIT_ATTEMPT_COMPLETED = -220
#: PodPreemptedForCriticalPod: stopped to make room for a higher-priority job.
EXIT_PREEMPTED = -1003
#: The backend has no trace of a task it was running (a transient platform failure: retried).
EXIT_TASK_LOST = -1101
