"""Failure analysis: why did a task fail, and may it be retried (OpenPAI's exit spec, notes §3.3–3.6).

When a task's command ends with a non-zero code, the runtime classifies the failure the way OpenPAI's
runtime ``exithandler`` does: the **rules** (an ordered list of ``{code, patterns}``) are tried in
order, and within a rule its patterns in order; a pattern matches when every condition it has holds
(``exitCode`` equal, ``userLogRegex`` found in the tail of the task's ``all`` log, ``platformLogRegex``
found in ``runtime.log``, ``gpuInfo`` equal to what the GPUs report). The first match gives the code;
no match gives 255 (PAIRuntimeUnknownFailed) — the user's own code is kept as ``originUserExitCode``.
The code's entry in the exit-spec table then says what it means: ``phrase``, ``type``, ``behavior``,
``reaction``, ``reason``, ``solution``; ``retryable`` is false exactly when the behaviour is PERMANENT.

Where the rules come from:

* default: OpenPAI's rendered runtime pattern list (``data/runtime-exit-spec.yaml``) and code table
  (``data/k8s-job-exit-spec.yaml``), combined with PAI Hub's additions (``data/pai-hub-exit-spec.yaml``);
* an administrator's file, named by a task spec's ``exit_spec`` or the launcher's environment variable
  ``PAI_EXIT_SPEC``, in either format (a table with ``spec:`` like ``k8s-job-exit-spec.yaml``, or a
  pattern list like ``runtime-exit-spec.yaml``). It is re-read when its modification time, size or
  inode changes, so an edit applies to the next failure without restarting anything. A file that
  cannot be read leaves the last good version (or the default) in force, and the failure record says so.

Regular expressions are written for Go's RE2; :func:`go_regex` rewrites the constructs Python's ``re``
reads differently (flags in the middle of a pattern, ``\\z``, ``\\Q…\\E``, POSIX classes, ``(?<name>``).

``python -m pai_runtime.exitspec dump`` prints the effective default (a starting point for an
administrator's file); ``check FILE`` compiles every pattern of a file; ``analyze`` classifies logs.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pai_runtime.exitcodes import EXIT_RUNTIME_FAILURE, EXIT_UNKNOWN_FAILURE

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
TABLE_FILE = os.path.join(DATA_DIR, "k8s-job-exit-spec.yaml")
RULES_FILE = os.path.join(DATA_DIR, "runtime-exit-spec.yaml")
ADDITIONS_FILE = os.path.join(DATA_DIR, "pai-hub-exit-spec.yaml")
ENV_VAR = "PAI_EXIT_SPEC"

#: How much of the end of the user's ``all`` log is searched (OpenPAI: 16 KiB).
USER_LOG_TAIL_BYTES = 16 * 1024
#: How much of the end of ``runtime.log`` is searched.
PLATFORM_LOG_TAIL_BYTES = 64 * 1024
#: Matched strings are cut to this many characters (OpenPAI: 2048).
MATCH_MAX_CHARS = 2048


GpuInfo = dict[str, Any]
GpuInfoHook = Callable[[list[int]], "GpuInfo | None"]

# --------------------------------------------------------------------------- Go RE2 → Python re

_FLAGS_ONLY = re.compile(r"\(\?([a-zA-Z]*)(?:-([a-zA-Z]*))?\)")
_FLAGS_SCOPED = re.compile(r"\(\?([a-zA-Z]*)(?:-([a-zA-Z]*))?:")
_POSIX = {
    "alnum": "0-9A-Za-z", "alpha": "A-Za-z", "ascii": "\\x00-\\x7F", "blank": "\\t ",
    "cntrl": "\\x00-\\x1F\\x7F", "digit": "0-9", "graph": "!-~", "lower": "a-z", "print": " -~",
    "punct": "!-/:-@\\[-`{-~", "space": "\\t\\n\\v\\f\\r ", "upper": "A-Z", "word": "0-9A-Za-z_",
    "xdigit": "0-9A-Fa-f",
}
_UNICODE_CLASSES = {"L": "[^\\W\\d_]", "N": "\\d", "Nd": "\\d", "Z": "\\s", "Zs": "\\s"}
_UNICODE_NEGATED = {"L": "[\\W\\d_]", "N": "\\D", "Nd": "\\D", "Z": "\\S", "Zs": "\\S"}
_PY_FLAGS = set("imsx")


def _flag_text(on: str, off: str) -> tuple[str, str]:
    """Flags Python can express (RE2's U — ungreedy — has no Python equivalent and is dropped)."""
    return "".join(f for f in on if f in _PY_FLAGS), "".join(f for f in off if f in _PY_FLAGS)


def go_regex(pattern: str) -> str:
    """Rewrite a Go RE2 pattern so Python's ``re`` gives it the same meaning.

    * ``(?flags)`` is global only at the very start in Python ≥ 3.11; elsewhere it is turned into a
      scoped group ``(?flags:…)`` reaching to the end of the enclosing group, as RE2 applies it
      (re-opened after each ``|`` of that group);
    * ``\\z`` → ``\\Z``; ``\\Q…\\E`` → the escaped literal; ``[[:alpha:]]`` → ``[A-Za-z]``;
      ``\\pL``/``\\p{L}``/``\\pN`` → approximations; ``(?<name>`` → ``(?P<name>``;
    * ``[``, ``&``, ``~``, ``|`` inside a character class are escaped (Python warns about them).
    """
    out: list[str] = []
    leading: set[str] = set()
    wrappers: list[list[str]] = [[]]  # per group level: scoped-flag groups opened inside it
    only_flags_so_far = True
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            nxt = pattern[i + 1 : i + 2]
            if nxt == "z":
                out.append("\\Z")
                i += 2
            elif nxt == "Q":
                end = pattern.find("\\E", i + 2)
                literal = pattern[i + 2 : end if end >= 0 else n]
                out.append(re.escape(literal))
                i = end + 2 if end >= 0 else n
            elif nxt in ("p", "P"):
                if pattern[i + 2 : i + 3] == "{":
                    end = pattern.find("}", i + 3)
                    name, i2 = pattern[i + 3 : end], end + 1
                else:
                    name, i2 = pattern[i + 2 : i + 3], i + 3
                cls = (_UNICODE_NEGATED if nxt == "P" else _UNICODE_CLASSES).get(name)
                out.append(cls if cls is not None else pattern[i:i2])  # unsupported: compiling reports it
                i = i2
            else:
                out.append(pattern[i : i + 2])
                i += 2
            only_flags_so_far = False
            continue
        if c == "[":
            i = _copy_class(pattern, i, out)
            only_flags_so_far = False
            continue
        if c == "(":
            m = _FLAGS_ONLY.match(pattern, i)
            if m:
                on, off = _flag_text(m.group(1) or "", m.group(2) or "")
                if only_flags_so_far and not off:
                    leading.update(on)
                elif on or off:
                    opener = f"(?{on}{'-' + off if off else ''}:"
                    out.append(opener)
                    wrappers[-1].append(opener)
                i = m.end()
                continue
            m = _FLAGS_SCOPED.match(pattern, i)
            if m:
                on, off = _flag_text(m.group(1) or "", m.group(2) or "")
                out.append(f"(?{on}{'-' + off if off else ''}:" if (on or off) else "(?:")
                i = m.end()
            elif pattern.startswith("(?<", i) and pattern[i + 3 : i + 4] not in ("=", "!"):
                out.append("(?P<")
                i += 3
            else:
                out.append("(")
                i += 1
            wrappers.append([])
            only_flags_so_far = False
            continue
        if c == ")":
            opened = wrappers.pop() if len(wrappers) > 1 else []
            out.append(")" * len(opened) + ")")
            i += 1
            only_flags_so_far = False
            continue
        if c == "|" and wrappers[-1]:
            out.append(")" * len(wrappers[-1]) + "|" + "".join(wrappers[-1]))
            i += 1
            continue
        out.append(c)
        i += 1
        only_flags_so_far = False
    out.append(")" * len(wrappers[0]))
    prefix = f"(?{''.join(sorted(leading))})" if leading else ""
    return prefix + "".join(out)


def _copy_class(pattern: str, i: int, out: list[str]) -> int:
    """Copy the character class starting at ``pattern[i] == '['``; returns the index after it."""
    out.append("[")
    i += 1
    n = len(pattern)
    if pattern[i : i + 1] == "^":
        out.append("^")
        i += 1
    if pattern[i : i + 1] == "]":  # a leading ] is literal
        out.append("\\]")
        i += 1
    while i < n:
        c = pattern[i]
        if c == "\\":
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if c == "]":
            out.append("]")
            return i + 1
        if c == "[" and pattern.startswith("[:", i):
            end = pattern.find(":]", i + 2)
            name = pattern[i + 2 : end] if end >= 0 else ""
            if name in _POSIX:
                out.append(_POSIX[name])
                i = end + 2
                continue
        if c in "[&~|":
            out.append("\\" + c)
        else:
            out.append(c)
        i += 1
    return i  # unterminated: compiling reports it


def compile_go_regex(pattern: str) -> re.Pattern[str]:
    """Compile an RE2 pattern with Python's ``re`` (see :func:`go_regex`); raises ``re.error``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return re.compile(go_regex(pattern))


# --------------------------------------------------------------------------- the spec


@dataclass(frozen=True)
class ExitPattern:
    """One pattern: every condition that is not None must hold."""

    exit_code: int | None = None
    user_log: re.Pattern[str] | None = None
    platform_log: re.Pattern[str] | None = None
    gpu_info: GpuInfo | None = None


@dataclass(frozen=True)
class ExitRule:
    code: int
    patterns: tuple[ExitPattern, ...]


@dataclass
class ExitSpec:
    """Ordered rules plus the code table (code → entry with phrase, type, behavior, ...)."""

    rules: list[ExitRule]
    table: dict[int, dict[str, Any]]
    source: str = "builtin"
    #: Patterns that could not be compiled (they never match), as "code N: message".
    errors: list[str] = field(default_factory=list)

    # -- lookups ---------------------------------------------------------------------------------

    def entry(self, code: int) -> dict[str, Any]:
        """The table entry of ``code``, with OpenPAI's fallbacks (REST server ``generateExitSpec``):
        unknown positive codes take entry 256's meaning, unknown negative ones entry -8000's."""
        found = self.table.get(code) or _default_table().get(code)
        if found is None:
            fallback = EXIT_RUNTIME_FAILURE if code > 0 else -8000
            found = self.table.get(fallback) or _default_table().get(fallback) or {}
        return {**found, "code": code}

    def match(self, exit_code: int, user_log: str, platform_log: str,
              gpu_info: Callable[[], GpuInfo | None]) -> tuple[int, ExitPattern | None, str | None,
                                                               str | None, GpuInfo | None]:
        """First matching rule: ``(code, pattern, matched user string, matched platform string,
        gpu info)``; ``(255, None, ...)`` when nothing matches. ``gpu_info`` is called at most once,
        and only when a pattern needs it."""
        gpu_cache: list[GpuInfo | None] = []
        for rule in self.rules:
            for pattern in rule.patterns:
                if pattern.exit_code is not None and pattern.exit_code != exit_code:
                    continue
                matched_platform = matched_user = None
                if pattern.platform_log is not None:
                    m = pattern.platform_log.search(platform_log)
                    if m is None:
                        continue
                    matched_platform = m.group(0)
                if pattern.user_log is not None:
                    m = pattern.user_log.search(user_log)
                    if m is None:
                        continue
                    matched_user = m.group(0)
                matched_gpu = None
                if pattern.gpu_info is not None:
                    if not gpu_cache:
                        gpu_cache.append(gpu_info())
                    if gpu_cache[0] is None or not _subset_equal(pattern.gpu_info, gpu_cache[0]):
                        continue
                    matched_gpu = dict(pattern.gpu_info)
                return rule.code, pattern, matched_user, matched_platform, matched_gpu
        return EXIT_UNKNOWN_FAILURE, None, None, None, None

    def describe(self, code: int, origin: int) -> dict[str, Any]:
        """The failure record of ``code`` (no log matching)."""
        entry = self.entry(code)
        behavior = entry.get("behavior")
        return {
            "exitCode": code,
            "originUserExitCode": origin,
            "phrase": entry.get("phrase"),
            "type": entry.get("type"),
            "behavior": behavior,
            "reaction": entry.get("reaction"),
            "reason": entry.get("reason"),
            "solution": list(entry.get("solution") or []),
            "matchedUserLogString": None,
            "matchedPlatformLogString": None,
            "retryable": behavior != "PERMANENT",
        }

    def analyze(self, exit_code: int, user_log: str = "", platform_log: str = "",
                gpu_info: GpuInfo | Callable[[], GpuInfo | None] | None = None) -> dict[str, Any]:
        """Classify a failure: the record that goes into ``exit.json`` as ``exitInfo``."""
        provider = gpu_info if callable(gpu_info) else (lambda: gpu_info)  # type: ignore[return-value]
        code, _, user, platform, gpu = self.match(exit_code, user_log, platform_log, provider)
        info = self.describe(code, exit_code)
        info["matchedUserLogString"] = user[:MATCH_MAX_CHARS] if user is not None else None
        info["matchedPlatformLogString"] = platform[:MATCH_MAX_CHARS] if platform is not None else None
        if gpu is not None:
            info["matchedGpuInfo"] = gpu
        return info


def _subset_equal(wanted: Mapping[str, Any], got: Mapping[str, Any]) -> bool:
    return all(got.get(k) == v for k, v in wanted.items())


def _patterns(raw: Any, code: int, errors: list[str]) -> tuple[ExitPattern, ...]:
    out = []
    for p in raw or []:
        if not isinstance(p, dict):
            errors.append(f"code {code}: pattern {p!r} is not a mapping")
            continue
        compiled: dict[str, re.Pattern[str] | None] = {}
        bad = False
        for key in ("userLogRegex", "platformLogRegex"):
            text = p.get(key)
            compiled[key] = None
            if text is not None:
                try:
                    compiled[key] = compile_go_regex(str(text))
                except re.error as exc:
                    errors.append(f"code {code}: {key} {text!r}: {exc}")
                    bad = True
        if bad:
            continue  # a pattern that cannot be compiled never matches
        exit_code = p.get("exitCode")
        out.append(ExitPattern(
            exit_code=int(exit_code) if exit_code is not None else None,
            user_log=compiled["userLogRegex"], platform_log=compiled["platformLogRegex"],
            gpu_info=dict(p["gpuInfo"]) if isinstance(p.get("gpuInfo"), dict) else None,
        ))
    return tuple(out)


def _load_yaml(path: str) -> Any:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(path, "rb") as f:
        return yaml.load(f, Loader=loader)  # a safe loader


def parse_spec(doc: Any, source: str = "builtin") -> ExitSpec:
    """An :class:`ExitSpec` from a parsed document in either format:

    * table (``{spec: [{code, phrase, ..., pattern: {runtimeContainerPatterns: [...]}}]}``): rules are
      the entries with runtime patterns, in table order;
    * pattern list (``[{containerExitCode, patterns: [...]}]``): the rules; meanings of the codes
      come from the built-in table.
    """
    errors: list[str] = []
    rules: list[ExitRule] = []
    table: dict[int, dict[str, Any]] = {}
    if isinstance(doc, dict) and isinstance(doc.get("spec"), list):
        for entry in doc["spec"]:
            if not isinstance(entry, dict) or "code" not in entry:
                errors.append(f"entry {entry!r} has no code")
                continue
            code = int(entry["code"])
            table[code] = entry
            raw = (entry.get("pattern") or {}).get("runtimeContainerPatterns")
            if raw:
                rules.append(ExitRule(code, _patterns(raw, code, errors)))
    elif isinstance(doc, list):
        for item in doc:
            if not isinstance(item, dict) or "containerExitCode" not in item:
                errors.append(f"rule {item!r} has no containerExitCode")
                continue
            code = int(item["containerExitCode"])
            rules.append(ExitRule(code, _patterns(item.get("patterns"), code, errors)))
    else:
        raise ValueError("an exit spec is a mapping with a 'spec' list or a list of {containerExitCode, patterns}")
    return ExitSpec(rules, table, source, errors)


def _combine(base: ExitSpec, additions: ExitSpec) -> ExitSpec:
    """Base rules and table plus PAI Hub's additions (see ``data/pai-hub-exit-spec.yaml``)."""
    table = dict(base.table)
    for code, entry in additions.table.items():
        if code in table:
            continue
        table[code] = entry
    rules = list(base.rules)
    known = {r.code: i for i, r in enumerate(rules)}
    front = []
    for rule in additions.rules:
        if rule.code in known:
            i = known[rule.code]
            rules[i] = ExitRule(rule.code, rules[i].patterns + rule.patterns)
        else:
            front.append(rule)
    return ExitSpec(front + rules, table, base.source, base.errors + additions.errors)


_lock = threading.Lock()
_default: ExitSpec | None = None
_table_only: dict[int, dict[str, Any]] | None = None
_files: dict[str, tuple[tuple[int, int, int], ExitSpec]] = {}
_file_errors: dict[str, str] = {}


def _default_table() -> dict[int, dict[str, Any]]:
    return default_spec().table


def default_spec() -> ExitSpec:
    """OpenPAI's rules and table plus PAI Hub's additions (loaded once)."""
    global _default
    if _default is None:
        with _lock:
            if _default is None:
                table = parse_spec(_load_yaml(TABLE_FILE))
                rules = parse_spec(_load_yaml(RULES_FILE))
                additions = parse_spec(_load_yaml(ADDITIONS_FILE))
                base = ExitSpec(rules.rules, table.table, "builtin", table.errors + rules.errors)
                _default = _combine(base, additions)
    return _default


def load_spec(path: str | None = None) -> ExitSpec:
    """The exit spec at ``path`` (re-read when the file changed), or the default when ``path`` is
    None. A file that cannot be read leaves its last good version, or the default, in force;
    :func:`spec_error` then tells why."""
    if not path:
        return default_spec()
    try:
        st = os.stat(path)
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
    except OSError as exc:
        _file_errors[path] = f"cannot read exit spec {path}: {exc.strerror}"
        cached = _files.get(path)
        return cached[1] if cached else default_spec()
    cached = _files.get(path)
    if cached is not None and cached[0] == key:
        return cached[1]
    try:
        spec = parse_spec(_load_yaml(path), source=path)
    except Exception as exc:
        _file_errors[path] = f"cannot load exit spec {path}: {type(exc).__name__}: {exc}"
        return cached[1] if cached else default_spec()
    _files[path] = (key, spec)
    _file_errors.pop(path, None)
    return spec


def spec_error(path: str | None) -> str | None:
    """Why the file at ``path`` is not (or no longer) in force, if it is not."""
    return _file_errors.get(path) if path else None


def spec_path(spec_field: str | None = None) -> str | None:
    """Which file to use: a task spec's ``exit_spec``, else ``$PAI_EXIT_SPEC``, else None (default)."""
    return spec_field or os.environ.get(ENV_VAR) or None


# --------------------------------------------------------------------------- GPU information

_gpu_hook: GpuInfoHook | None = None


def set_gpu_info_hook(hook: GpuInfoHook | None) -> None:
    """Replace how GPU facts are collected (``hook(gpu_indices) -> {"nvidiaDoubleEccError": bool}``
    or None when unknown). For tests and for nodes with their own health tooling."""
    global _gpu_hook
    _gpu_hook = hook


def gpu_info_from_ecc_count(count: int) -> GpuInfo:
    """OpenPAI's gpuInfo from a double-bit (uncorrectable) ECC error count."""
    return {"nvidiaDoubleEccError": count > 0}


def nvml_gpu_info(gpus: list[int]) -> GpuInfo | None:
    """Uncorrectable volatile ECC errors of the task's GPUs through NVML; None without GPUs or NVML."""
    if not gpus:
        return None
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:
        return None
    try:
        count = 0
        for index in gpus:
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            try:
                count += pynvml.nvmlDeviceGetTotalEccErrors(
                    handle, pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, pynvml.NVML_VOLATILE_ECC)
            except pynvml.NVMLError:
                continue  # ECC not supported on this GPU
        return gpu_info_from_ecc_count(count)
    except Exception:
        return None
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass


def gpu_info_for(gpus: list[int]) -> GpuInfo | None:
    hook = _gpu_hook
    return hook(gpus) if hook is not None else nvml_gpu_info(gpus)


# --------------------------------------------------------------------------- task failures


def read_tail(path: str, limit: int) -> str:
    """The last ``limit`` bytes of a file as text ("" when it does not exist)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            data = f.read()
    except OSError:
        return ""
    return data.decode("utf-8", "replace")


def analyze_task(exit_code: int, log_dir: str, gpus: list[int] | None = None,
                 spec_file: str | None = None) -> dict[str, Any]:
    """Classify the failure of a task whose logs are in ``log_dir`` (``all`` and ``runtime.log``)."""
    path = spec_path(spec_file)
    spec = load_spec(path)
    info = spec.analyze(
        exit_code,
        read_tail(os.path.join(log_dir, "all"), USER_LOG_TAIL_BYTES),
        read_tail(os.path.join(log_dir, "runtime.log"), PLATFORM_LOG_TAIL_BYTES),
        lambda: gpu_info_for(list(gpus or [])),
    )
    error = spec_error(path)
    if error:
        info["exitSpecError"] = error
    return info


def describe_code(code: int, origin: int, spec_file: str | None = None) -> dict[str, Any]:
    """The failure record of a code the runtime assigns itself (no log matching)."""
    path = spec_path(spec_file)
    return load_spec(path).describe(code, origin)


# --------------------------------------------------------------------------- command line


def _dump_default() -> dict[str, Any]:
    """The default as one table: OpenPAI's entries with their runtime patterns plus PAI Hub's
    additions; new codes with rules first (that is where their rules are tried)."""
    spec = default_spec()
    raw_rules = {r["containerExitCode"]: list(r["patterns"]) for r in _load_yaml(RULES_FILE)}
    base_codes = {int(e["code"]) for e in _load_yaml(TABLE_FILE)["spec"]}
    for entry in _load_yaml(ADDITIONS_FILE)["spec"]:
        extra = (entry.get("pattern") or {}).get("runtimeContainerPatterns") or []
        if extra:
            raw_rules.setdefault(int(entry["code"]), []).extend(extra)
    entries = []
    for code, entry in spec.table.items():
        entry = {k: v for k, v in entry.items() if k != "pattern"}
        if raw_rules.get(code):
            entry["pattern"] = {"runtimeContainerPatterns": raw_rules[code]}
        entries.append(entry)
    new_with_rules = [e for e in entries if e["code"] not in base_codes and "pattern" in e]
    return {"spec": new_with_rules + [e for e in entries if e not in new_with_rules]}


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python -m pai_runtime.exitspec", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("dump", help="print the effective default exit spec (table format, YAML)")
    check = sub.add_parser("check", help="load a file and compile every pattern")
    check.add_argument("file")
    an = sub.add_parser("analyze", help="classify a failure from logs")
    an.add_argument("exit_code", type=int)
    an.add_argument("--user-log", default=None)
    an.add_argument("--platform-log", default=None)
    an.add_argument("--spec", default=None, help="exit spec file (default: $PAI_EXIT_SPEC or built-in)")
    args = parser.parse_args(argv)
    if args.cmd == "dump":
        import yaml

        sys.stdout.write(yaml.safe_dump(_dump_default(), sort_keys=False, allow_unicode=True, width=1000))
        return 0
    if args.cmd == "check":
        spec = parse_spec(_load_yaml(args.file), source=args.file)
        for error in spec.errors:
            print(error, file=sys.stderr)
        print(f"{len(spec.rules)} rules, {sum(len(r.patterns) for r in spec.rules)} patterns, "
              f"{len(spec.errors)} errors")
        return 1 if spec.errors else 0
    spec = load_spec(spec_path(args.spec))
    user = read_tail(args.user_log, USER_LOG_TAIL_BYTES) if args.user_log else ""
    platform = read_tail(args.platform_log, PLATFORM_LOG_TAIL_BYTES) if args.platform_log else ""
    print(json.dumps(spec.analyze(args.exit_code, user, platform), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
