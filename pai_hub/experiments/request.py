"""The body of ``POST /api/v2/experiments``: checked by pydantic models, then normalised.

The models say what each key must hold; :func:`validate` turns their errors into one
``InvalidParametersError`` naming every wrong key by its path (``trial.files``,
``searchSpace.lr._type``) and what it should hold, then applies what a model cannot say (a trial is a
command or a job protocol; a code directory must exist unless the files are sent) and returns the
normalised request the service stores.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictStr,
    ValidationError,
    field_validator,
)

from ..protocol import DEFAULT_LIMITS, InvalidProtocol, Limits, TooLarge, load_document
from ..protocol.field_errors import field_errors
from ..protocol.limits import check_object
from ..protocol.validate import count_errors
from .service import ExperimentError

__all__ = ["TUNERS", "validate"]

#: NNI 3.0's built-in tuners.
TUNERS = ("Anneal", "BOHB", "Batch", "DNGO", "Evolution", "GP", "GridSearch", "Hyperband", "Hyperopt",
          "Metis", "PBT", "Random", "SMAC", "TPE")

_HINTS = {
    "searchSpace": "a non-empty mapping of parameter → {_type, _value} (NNI's format)",
    "_type": "NNI's sampling type, such as choice, uniform or loguniform",
    "_value": "the choices or the range to sample from",
    "maxTrialNumber": "how many trials to run, 1..10000",
    "trialConcurrency": "how many trials run at once, 1..1000",
    "trial": "{command, cpu?, memoryMB?, gpu?, sku?, image?} or {protocol}, with codeDir or files",
    "files": "a mapping of relative file name → text",
    "cpu": "CPUs per trial", "memoryMB": "memory per trial in MiB", "gpu": "GPUs per trial",
    "assessor": "{name: Medianstop|Curvefitting, classArgs: {...}}",
}


def _empty_mapping(value: Any) -> Any:
    return {} if value is None else value


def _tuner(value: Any) -> Any:
    """``tuner: TPE`` is ``{name: TPE}``; no tuner is Random."""
    if not value:
        return {"name": "Random"}
    return {"name": value} if isinstance(value, str) else value


def _protocol(value: Any) -> Any:
    """A job protocol (v2) as YAML text or a mapping; it must have task roles."""
    if not value:
        return None
    if isinstance(value, str):
        try:  # the one bounded loader: no alias bombs, no 100,000-deep nesting
            value = load_document(value, what="trial.protocol")
        except TooLarge as exc:
            raise ValueError(str(exc)) from None
        except InvalidProtocol as exc:
            raise ValueError(f"not valid YAML: {exc}") from None
    if not isinstance(value, dict) or not isinstance(value.get("taskRoles"), dict) or not value["taskRoles"]:
        raise ValueError("must be a job protocol (v2) with taskRoles")
    too_many = count_errors(value)  # every trial would be refused: say so now
    if too_many:
        raise ValueError("; ".join(str(e) for e in too_many))
    return value


class _Parameter(BaseModel):
    model_config = ConfigDict(extra="allow")

    type_: Any = Field(alias="_type")
    value: Any = Field(alias="_value")


class _Tuner(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: Literal[TUNERS]  # type: ignore[valid-type]


class _Assessor(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: Annotated[StrictStr, Field(min_length=1)]


class _Trial(BaseModel):
    model_config = ConfigDict(extra="ignore")

    protocol: Annotated[dict[str, Any] | None, BeforeValidator(_protocol)] = None
    command: Any = None
    cpu: int | None = None
    memoryMB: int | None = None
    gpu: int | None = None
    sku: Any = None
    image: Any = None
    files: Annotated[dict[str, str], BeforeValidator(_empty_mapping)] = {}
    codeDir: StrictStr | None = None

    @field_validator("files")
    @classmethod
    def _relative_names(cls, files: dict[str, str]) -> dict[str, str]:
        for name in files:
            if ("\0" in name or "\\" in name or name.startswith("/") or ".." in Path(name).parts
                    or not Path(name).parts):  # "", ".", "./" name the code directory itself
                raise ValueError(f"{name!r} must be a relative path of a file inside the code directory "
                                 "(no '..', NUL or backslash)")
        return files

    @field_validator("codeDir")
    @classmethod
    def _absolute(cls, code_dir: str | None) -> str | None:
        if code_dir is not None and not os.path.isabs(code_dir):
            raise ValueError(f"must be an absolute directory on the PAI Hub host (or send trial.files), "
                             f"got {code_dir!r}")
        return code_dir


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")

    searchSpace: Annotated[dict[str, _Parameter], Field(min_length=1)]
    tuner: Annotated[_Tuner, BeforeValidator(_tuner)] = _Tuner(name="Random")
    assessor: _Assessor | None = None
    maxTrialNumber: Annotated[int, Field(ge=1, le=10000)] = 10
    trialConcurrency: Annotated[int, Field(ge=1, le=1000)] = 1
    trial: _Trial


def _bad(message: str) -> ExperimentError:
    return ExperimentError(400, "InvalidParametersError", message)


def _template(trial: _Trial) -> dict[str, Any]:
    """What each trial's PAI job is made from: the job protocol, or a command and its resources."""
    if trial.protocol:
        return {"protocol": trial.protocol}
    if not isinstance(trial.command, str) or not trial.command.strip():
        raise _bad(f"trial: needs command (with cpu/memoryMB/gpu/sku) or protocol ({_HINTS['trial']})")
    template: dict[str, Any] = {key: getattr(trial, key) for key in ("cpu", "memoryMB", "gpu")
                                if getattr(trial, key) is not None}
    template["command"] = trial.command
    for key in ("sku", "image"):
        if getattr(trial, key):
            template[key] = str(getattr(trial, key))
    return template


def validate(body: dict[str, Any], limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """The experiment request, checked and normalised; raises ExperimentError(400) naming every wrong key.

    The body is first held to ``limits`` as if every shared reference were a copy (what storing
    the search space as JSON makes of it), before any model is built from it.
    """
    try:
        check_object(body, limits, what="the experiment request")
    except InvalidProtocol as exc:
        raise _bad(str(exc)) from None
    try:
        request = _Request.model_validate(body)
    except ValidationError as exc:
        raise _bad("; ".join(f"{path}: {reason}" if path else reason
                             for path, reason in field_errors(exc, _HINTS))) from None
    trial = request.trial
    template = _template(trial)
    if trial.codeDir and not trial.files and not os.path.isdir(trial.codeDir):
        raise _bad(f"trial.codeDir: {trial.codeDir} is not a directory on the PAI Hub host (or send trial.files)")
    name = str(body.get("name") or "experiment")
    return {"name": name[:100], "searchSpace": body["searchSpace"], "tuner": request.tuner.model_dump(),
            "assessor": body.get("assessor"), "maxTrialNumber": request.maxTrialNumber,
            "trialConcurrency": request.trialConcurrency,
            "maxExperimentDuration": body.get("maxExperimentDuration"),
            "virtualCluster": str(body.get("virtualCluster") or "default"),
            "template": template, "codeDir": trial.codeDir, "files": trial.files}
