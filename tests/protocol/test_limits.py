"""Bounded cost of one job document (issue 17, "Unbounded expansion"): every refusal comes before
the expensive thing is built, in milliseconds and without memory, with a message naming the limit.

Each document here is one of the issue's attacks, small as text: a billion laughs in ``parameters``,
``instances: 1000000000``, 75,000 task roles, an 800 KB parameter referenced 8,000 times.
"""

from __future__ import annotations

import pytest

from pai_hub import protocol
from pai_hub.protocol import DEFAULT_LIMITS, InvalidProtocol, Limits, ProtocolParseError, TooLarge
from pai_hub.protocol.errors import MAX_ERROR_CHARS
from pai_hub.protocol.limits import RenderBudget, check_object, name_list
from pai_hub.protocol.prerequisites import plugin_invocations
from pai_hub.protocol.template import js_length, js_string, render_template
from tests.protocol.cost import MB, cost

#: what any refusal may cost this process
FAST_S, SMALL = 1.0, 64 * MB


def job(role: str = "", *, top: str = "", instances: object = 1, commands: str = "      - echo hi\n") -> str:
    return (f"protocolVersion: 2\nname: j\ntype: job\n{top}"
            "prerequisites:\n  - {name: image, type: dockerimage, uri: python:3.11}\n"
            "taskRoles:\n"
            f"  worker:\n    instances: {instances}\n    dockerImage: image\n"
            "    resourcePerInstance: {cpu: 1, memoryMB: 64, gpu: 0}\n"
            f"    commands:\n{commands}{role}")


def laughs(levels: int = 9, width: int = 9) -> str:
    """The issue's 642-byte "billion laughs": ``levels`` anchors, each ``width`` aliases of the last."""
    lines = [f'  l0: &l0 [{", ".join(["lol"] * width)}]']
    lines += [f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels)]
    return "parameters:\n" + "\n".join(lines) + "\n"


def refused(fn, kind: type[BaseException] = TooLarge) -> str:
    """``fn`` raises ``kind`` within FAST_S and SMALL; its message."""
    spent = cost(fn)
    assert isinstance(spent.error, kind), f"expected {kind.__name__}, got {spent.error!r} / {spent.result!r}"
    assert spent.cpu_seconds < FAST_S, f"refused after {spent.cpu_seconds:.2f} s of CPU ({spent.seconds:.2f} s)"
    assert spent.growth < SMALL, f"refusing cost {spent.growth / MB:.0f} MB"
    return str(spent.error)


def test_billion_laughs_in_parameters_refused_before_construction() -> None:
    text = job(top=laughs())
    assert len(text) < 1000
    message = refused(lambda: protocol.load(text))
    assert f"more than {DEFAULT_LIMITS.max_nodes} YAML nodes" in message
    assert "aliases counted at their expanded size" in message


def test_small_alias_use_is_accepted() -> None:
    job_ = protocol.load(job(top=laughs(levels=3, width=3)))
    assert job_.parameters["l2"] == [[["lol"] * 3] * 3] * 3


def test_long_string_aliased_many_times_is_refused_on_characters() -> None:
    big = "x" * 100_000
    text = job(top=f"parameters:\n  p: &p {big}\n  q: [{', '.join(['*p'] * 200)}]\n")
    message = refused(lambda: protocol.parse(text))
    assert f"more than {DEFAULT_LIMITS.max_expanded_chars} characters" in message


def test_recursive_alias_refused() -> None:
    assert "recursive" in refused(lambda: protocol.parse(job(top="parameters: &p {self: *p}\n")))


def test_depth_refused() -> None:
    nested = "parameters:\n" + "".join(f"{'  ' * (i + 1)}k{i}:\n" for i in range(100)) + f"{'  ' * 101}v\n"
    assert f"nested more than {DEFAULT_LIMITS.max_depth} levels" in refused(lambda: protocol.parse(job(top=nested)))


def test_flow_depth_refused_without_recursion_error() -> None:
    message = refused(lambda: protocol.parse("a: " + "[" * 100_000 + "]" * 100_000), InvalidProtocol)
    assert "nest" in message


def test_document_bytes_refused_before_parsing() -> None:
    limits = Limits(max_bytes=10_000)
    message = refused(lambda: protocol.parse(job(top=f"description: {'x' * 20_000}\n"), limits))
    assert "more than the limit of 10000 bytes" in message


def test_huge_integer_is_a_parse_error_not_a_crash() -> None:
    message = refused(lambda: protocol.parse(job(instances="9" * 5000)), ProtocolParseError)
    assert "4300 digits" in message


@pytest.mark.parametrize("dry", [False, True])
def test_billion_instances_refused_arithmetically(dry: bool) -> None:
    text = job(instances=1_000_000_000)
    assert len(text) < 300
    message = refused(lambda: protocol.load(text), InvalidProtocol)
    assert message == ("taskRoles.worker.instances: 1000000000 instances, more than the limit of "
                       f"{DEFAULT_LIMITS.max_instances} per task role")


def test_huge_instance_count_written_as_5000_digits_is_refused() -> None:
    message = refused(lambda: protocol.load_dict({**protocol.parse(job()), "taskRoles": {
        "w": {"instances": 10**4000, "dockerImage": "image", "commands": ["x"],
              "resourcePerInstance": {"cpu": 1, "memoryMB": 1, "gpu": 0}}}}), InvalidProtocol)
    assert "a 4001-digit number instances" in message and len(message) < 300


def test_total_tasks_refused() -> None:
    roles = "".join(f"  r{i}:\n    instances: 900\n    dockerImage: image\n"
                    "    resourcePerInstance: {cpu: 1, memoryMB: 64, gpu: 0}\n    commands: [x]\n" for i in range(12))
    text = job().split("taskRoles:\n")[0] + "taskRoles:\n" + roles
    message = refused(lambda: protocol.load(text), InvalidProtocol)
    assert message == f"taskRoles: 10800 tasks in all, more than the limit of {DEFAULT_LIMITS.max_total_tasks} per job"


def test_75000_task_roles_refused_with_a_short_message() -> None:
    roles = "".join(f"  r{i}: {{}}\n" for i in range(75_000))
    text = job().split("taskRoles:\n")[0] + "taskRoles:\n" + roles
    assert "more than 50000 YAML nodes" in refused(lambda: protocol.load(text))  # as YAML: too many nodes
    doc = {**protocol.parse(job()), "taskRoles": {f"r{i}": {} for i in range(75_000)}}  # built by a client
    message = refused(lambda: protocol.load_dict(doc), InvalidProtocol)
    assert message == f"taskRoles: 75000 task roles, more than the limit of {DEFAULT_LIMITS.max_task_roles} per job"


def test_limits_are_configurable() -> None:
    small = Limits(max_instances=4, max_task_roles=1)
    assert protocol.load(job(instances=4), small).task_roles["worker"].instances == 4
    with pytest.raises(InvalidProtocol, match="5 instances, more than the limit of 4"):
        protocol.load(job(instances=5), small)
    assert protocol.load(job(instances=5000), Limits(max_instances=5000, max_total_tasks=5000))


def test_large_parameter_referenced_8000_times_refused_before_concatenation() -> None:
    refs = "".join("      - echo <% $parameters.p %>\n" for _ in range(8000))
    text = job(top=f"parameters:\n  p: {'x' * 800_000}\n", commands=refs)
    assert len(text) < 1_100_000
    parsed = protocol.load(text)
    message = refused(lambda: protocol.render(parsed, username="alice"))
    assert message.startswith("taskRoles.worker.commands: templates render to more than "
                              f"{DEFAULT_LIMITS.max_rendered_chars} characters")


def test_list_parameter_of_aliases_measured_without_joining() -> None:
    value = ["y" * 1000] * 100_000  # one string, referenced 100,000 times
    spent = cost(lambda: js_length(value, 10_000))
    assert spent.result > 10_000 and spent.cpu_seconds < 0.01  # stopped once past the cap, nothing joined
    assert js_length(["a", ["b", 1.0, True, None]], 100) == len(js_string(["a", ["b", 1.0, True, None]]))
    with pytest.raises(TooLarge, match="render to more than 50000 characters"):
        render_template("<% $parameters.v %>", {"$parameters": {"v": value}}, budget=RenderBudget(50_000))


def test_budget_is_shared_by_every_role_and_plugin() -> None:
    top = f"parameters:\n  p: {'x' * 30_000}\n"
    plugin = ("extras:\n  com.microsoft.pai.runtimeplugin:\n    - plugin: cmd\n      parameters:\n"
              "        callbacks: [{event: taskStarts, commands: [" + ", ".join(['"<% $parameters.p %>"'] * 100) + "]}]\n")
    parsed = protocol.load(job(top=top + plugin))
    assert protocol.render(parsed, username="a")  # 3 MB of plugin commands fit the default 4 MB
    with pytest.raises(TooLarge, match=r"^extras\.com\.microsoft\.pai\.runtimeplugin\[0\]: templates render"):
        protocol.render(parsed, username="a", limits=Limits(max_rendered_chars=1_000_000))
    with pytest.raises(TooLarge):
        plugin_invocations(parsed, "worker", budget=RenderBudget(100_000))


def test_error_lists_are_bounded() -> None:
    prereqs = "".join(f"  - {{name: d{i:04}, type: data, uri: [x]}}\n" for i in range(1000))
    text = job().replace("prerequisites:\n", "prerequisites:\n" + prereqs).replace(
        "    dockerImage: image\n", "    dockerImage: image\n    data: nope\n    prerequisites: [nope]\n")
    message = refused(lambda: protocol.load(text), InvalidProtocol)
    assert "defined: 'd0000', 'd0001'" in message and "… and 990 more" in message
    assert len(message) < 2_000


def test_one_error_is_clipped() -> None:
    long_key = "k" * 100_000
    message = str(InvalidProtocol([protocol.ProtocolError(long_key, "bad")]))
    assert len(message) == MAX_ERROR_CHARS and message.endswith("…")


def test_name_list() -> None:
    assert name_list([]) == "none"
    assert name_list(["a", "b"]) == "'a', 'b'"
    assert name_list(range(25), limit=3) == "0, 1, 2 … and 22 more"


def test_check_object_counts_shared_references_as_copies() -> None:
    value: list = ["x" * 10] * 9
    for _ in range(30):
        value = [value] * 9
    assert f"more than {DEFAULT_LIMITS.max_nodes} nodes" in refused(lambda: check_object({"searchSpace": value}))
    deep: list = []
    cursor = deep
    for _ in range(100_000):
        cursor.append([])
        cursor = cursor[0]
    assert "nested more than 64 levels" in refused(lambda: check_object(deep))
    loop: list = []
    loop.append(loop)
    assert "recursive" in refused(lambda: check_object(loop))
    check_object({"a": [1, "two", {"b": None}]})  # a plain document passes


def test_accepted_jobs_re_render_without_limits() -> None:
    """A stored job is re-rendered at restart and its plugins at each task start: limits lowered
    since (or a larger configured budget at submission) must not make an accepted job fail later."""
    big = job(instances=5000, top=f"parameters:\n  p: {'x' * 10_000}\n",
              commands="".join("      - echo <% $parameters.p %>\n" for _ in range(500)))
    with pytest.raises(InvalidProtocol):
        protocol.render(protocol.load(big), username="a")
    plan = protocol.render(protocol.load(big, protocol.NO_LIMITS), username="a", limits=protocol.NO_LIMITS)
    assert plan.task_roles["worker"].instances == 5000
    assert len(plan.task_roles["worker"].entrypoint) > 5_000_000
    assert len(render_template("<% $parameters.p %>" * 500, {"$parameters": {"p": "x" * 10_000}})) == 5_000_000
