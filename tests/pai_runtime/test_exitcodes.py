"""The platform's exit codes mean in the exit spec what their names say."""

from __future__ import annotations

from pai_runtime import exitcodes, exitspec

PHRASES = {
    "EXIT_STOPPED": "ContainerSigTermReceived",
    "EXIT_PREREQUISITE_FAILED": "PrerequisiteCallbackFailed",
    "EXIT_UNKNOWN_FAILURE": "PAIRuntimeUnknownFailed",
    "EXIT_RUNTIME_FAILURE": "PAIRuntimeExitAbnormally",
    "EXIT_START_FAILED": "PodCreationPermanentError",
    "EXIT_STOP_REQUESTED": "StopFrameworkRequested",
    "EXIT_ATTEMPT_COMPLETED": "FrameworkAttemptCompletion",
    "EXIT_PREEMPTED": "PodPreemptedForCriticalPod",
}


def test_every_code_is_the_one_its_name_says() -> None:
    spec = exitspec.default_spec()
    names = sorted(n for n in vars(exitcodes) if n.startswith("EXIT_"))
    assert names == sorted([*PHRASES, "EXIT_TASK_LOST"])
    for name, phrase in PHRASES.items():
        assert spec.entry(getattr(exitcodes, name))["phrase"] == phrase, name
    assert exitcodes.EXIT_TASK_LOST == -1101  # OpenPAI has no entry: a negative code it does not know
