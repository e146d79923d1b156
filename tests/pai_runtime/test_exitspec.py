"""Failure analysis: OpenPAI's aggregator golden cases, the shipped spec, RE2 → Python regexes."""

from __future__ import annotations

from pathlib import Path

import pytest

from pai_runtime import exitspec
from pai_runtime.exitspec import compile_go_regex, go_regex, parse_spec
from tests.server import REFERENCE

FIXTURES = REFERENCE / "openpai/runtime-failure-analysis"


@pytest.fixture(scope="module")
def patterns() -> exitspec.ExitSpec:
    return parse_spec(exitspec._load_yaml(str(FIXTURES / "failurePatterns.yml")))


def logs(name: str) -> tuple[str, str]:
    return (FIXTURES / f"user.pai.all.{name}").read_text(), (FIXTURES / "runtime.pai.error.t1").read_text()


# notes §3.6 (openpai-runtime go/pkg/aggregator/aggregator_test.go)
@pytest.mark.parametrize(("log", "code", "expected", "matched"), [
    ("t1", 137, 137, None),
    ("t2", 1, 10, "exec(compile(getattr(tokenize, 'open', open)(__file__)"),
    ("t3", 1, 12, "failed with error code 1 in /tmp/pip"),
    ("t4", 1, 15, "connect tensorboard failed"),
    ("t1", 254, 255, None),
    ("t5", 1, 221, None),
])
def test_aggregator_golden_cases(patterns, log, code, expected, matched) -> None:
    user, platform = logs(log)
    info = patterns.analyze(code, user, platform)
    assert info["exitCode"] == expected
    assert info["originUserExitCode"] == code
    if matched is not None:
        assert info["matchedUserLogString"] == matched
    if expected == 15:
        assert info["matchedPlatformLogString"] == "Failed to start tensorboard"
    if expected == 221:
        assert "ResourceExhaustedError" in info["matchedUserLogString"]


def test_gpu_ecc_hook(patterns) -> None:
    user, platform = logs("t1")
    calls = []

    def hook() -> dict:
        calls.append(1)
        return exitspec.gpu_info_from_ecc_count(2)

    info = patterns.analyze(1, user, platform, hook)
    assert info["exitCode"] == 16 and info["matchedGpuInfo"] == {"nvidiaDoubleEccError": True}
    assert calls == [1]
    assert patterns.analyze(1, user, platform, exitspec.gpu_info_from_ecc_count(0))["exitCode"] == 255
    # the hook the runtime uses for tasks
    exitspec.set_gpu_info_hook(lambda gpus: exitspec.gpu_info_from_ecc_count(2 if gpus else 0))
    try:
        assert exitspec.gpu_info_for([0]) == {"nvidiaDoubleEccError": True}
        assert exitspec.default_spec().analyze(1, "", "", lambda: exitspec.gpu_info_for([0]))["exitCode"] == 128
    finally:
        exitspec.set_gpu_info_hook(None)


def test_shipped_spec_compiles_and_matches_openpai_table() -> None:
    spec = exitspec.default_spec()
    assert spec.errors == []
    table = parse_spec(exitspec._load_yaml(exitspec.TABLE_FILE))
    rendered = parse_spec(exitspec._load_yaml(exitspec.RULES_FILE))
    assert table.errors == [] and rendered.errors == []
    # the rendered runtime list is the table's runtime patterns, in table order
    assert [(r.code, len(r.patterns)) for r in table.rules] == [(r.code, len(r.patterns)) for r in rendered.rules]
    assert len(spec.table) == 63  # OpenPAI's 62 codes + PAI Hub's 240
    entry = spec.entry(231)
    assert (entry["phrase"], entry["type"], entry["behavior"]) == ("ContainerSyntaxError", "USER_FAILURE", "PERMANENT")
    assert spec.entry(77)["phrase"] == "PAIRuntimeExitAbnormally" and spec.entry(77)["code"] == 77
    assert spec.entry(-5)["phrase"] == "ContainerUndefinedNegativeExitCode"
    info = spec.analyze(127, "bash: foo: command not found\n", "")
    assert (info["exitCode"], info["phrase"], info["retryable"]) == (220, "UserCommandExitWithError", False)
    info = spec.analyze(137, "", "")
    assert (info["exitCode"], info["type"], info["behavior"], info["retryable"]) == (
        137, "PLATFORM_FAILURE", "TRANSIENT", True)
    info = spec.analyze(1, "", "")
    assert (info["exitCode"], info["originUserExitCode"], info["phrase"]) == (255, 1, "PAIRuntimeUnknownFailed")
    assert spec.analyze(1, "junk\nSyntaxError: '(' was never closed\n", "")["exitCode"] == 231
    assert spec.analyze(1, "ModuleNotFoundError: No module named 'x'\n", "")["exitCode"] == 232


@pytest.mark.parametrize(("go", "py"), [
    ("(?i)abc", "(?i)abc"),
    ("(?msi)x.*y", "(?ims)x.*y"),
    ("a(?i)b|c", "a(?i:b)|(?i:c)"),
    ("(x(?m)^y)z", "(x(?m:^y))z"),
    (r"\Qa.b\E\z", r"a\.b\Z"),
    ("[[:digit:]]+", "[0-9]+"),
    ("(?<n>x)", "(?P<n>x)"),
    ("(?U)a+", "a+"),
    ("[a&&b]", r"[a\&\&b]"),
])
def test_go_regex_translation(go: str, py: str) -> None:
    assert go_regex(go) == py
    compile_go_regex(go)


def test_mid_pattern_flags_behave_like_re2() -> None:
    assert compile_go_regex("error: (?i)oom").search("error: OOM")
    assert not compile_go_regex("error: (?i)oom").search("ERROR: OOM")
    assert compile_go_regex("(?i)x|y").search("Y")


def test_admin_file_reload_and_bad_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("- containerExitCode: 201\n  patterns:\n  - exitCode: 3\n")
    assert exitspec.load_spec(str(path)).analyze(3)["exitCode"] == 201
    path.write_text("- containerExitCode: 202\n  patterns:\n  - exitCode: 3\n  - exitCode: 4\n")
    assert exitspec.load_spec(str(path)).analyze(3)["exitCode"] == 202
    path.write_text("spec: [ {code: 5")  # broken: the last good version stays in force
    assert exitspec.load_spec(str(path)).analyze(3)["exitCode"] == 202
    assert "cannot load exit spec" in exitspec.spec_error(str(path))
    path.write_text("spec:\n- code: 203\n  phrase: Mine\n  behavior: PERMANENT\n"
                    "  pattern:\n    runtimeContainerPatterns:\n    - userLogRegex: 'x(?i)Y'\n")
    info = exitspec.load_spec(str(path)).analyze(9, "xy")
    assert (info["exitCode"], info["phrase"], info["retryable"]) == (203, "Mine", False)
    assert exitspec.spec_error(str(path)) is None
