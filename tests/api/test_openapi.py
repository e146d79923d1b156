"""``pai_hub/api/openapi.yaml`` is a valid OpenAPI 3 document that matches ``routes()``.

Checks both directions — every ``/api/v2``, ``/metrics`` and ``/marketplace/api`` route (and every
HTTP method its handler implements) is documented, and every documented path and method is served
— so the spec cannot drift from the code. No server is started. The full validation uses ``openapi-spec-validator`` when it is
installed; without it only the structural checks run.
"""

from __future__ import annotations

import itertools
import re
from importlib.resources import files

import yaml
from tornado import web

from pai_hub.app import ROUTE_PREFIXES, routes
from tests.requirements import require_module

SPEC_TEXT = files("pai_hub.api").joinpath("openapi.yaml").read_text()
SPEC = yaml.safe_load(SPEC_TEXT)
METHODS = ("get", "put", "post", "delete", "patch")
PREFIX = "/api/v2"
#: Route prefixes whose every route the spec documents.
DOCUMENTED = (PREFIX, "/metrics", "/marketplace/api")
# Documented ahead of the handler being routed; remove once routes() serves it.
PENDING: set[str] = set()


def templates(pattern: str) -> set[str]:
    """A route regex as path templates with anonymous ``{}`` parameters.

    Each capture group becomes ``{}``; each optional single character (``/users?``, ``/?``) is
    expanded both ways, and a trailing slash dropped.
    """
    parts = re.split(r"\(\?:([^()]*)\)", pattern)  # (?:y|ies): each alternative is a route of its own
    spelled = ["".join(combo) for combo in itertools.product(
        *[part.split("|") if i % 2 else [part] for i, part in enumerate(parts)])]
    out = set()
    for one in spelled:
        path = re.sub(r"\([^()]*\)", "{}", one)
        pieces = re.split(r"(.\?)", path)
        choices = [[p[0], ""] if len(p) == 2 and p[1] == "?" else [p] for p in pieces]
        for combo in itertools.product(*choices):
            t = "".join(combo)
            t = t.rstrip("/") or "/"
            assert not re.search(r"[\\()\[\]*+?^$|]", t), f"cannot normalise route {pattern!r} (got {t!r})"
            out.add(t)
    return out


def anonymous(spec_path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", spec_path)


def implemented(handler: type) -> set[str]:
    return {m for m in METHODS if getattr(handler, m) is not getattr(web.RequestHandler, m)}


ROUTES = routes()
SERVED = {t: h for pattern, h in ROUTES for t in templates(pattern)}
SPEC_PATHS = {anonymous(p): p for p in SPEC["paths"]}


def test_document_is_openapi_3():
    assert SPEC["openapi"].startswith("3.0.")
    for key in ("info", "paths", "components"):
        assert key in SPEC
    assert {"title", "version"} <= set(SPEC["info"])
    schemes = SPEC["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {**schemes["bearerAuth"], "type": "http", "scheme": "bearer"}
    assert schemes["basicAuth"] == {**schemes["basicAuth"], "type": "http", "scheme": "basic"}
    for path, item in SPEC["paths"].items():
        assert path.startswith(("/api/", "/nni/", "/metrics", "/marketplace/api")), path  # /nni/{id}: NNI's UI
        ops = {k: v for k, v in item.items() if k in METHODS}
        assert ops, f"{path} has no operation"
        declared = set(re.findall(r"\{([^}]+)\}", path))
        for method, op in ops.items():
            assert op.get("responses"), f"{method.upper()} {path} has no responses"
            params = [*item.get("parameters", []), *op.get("parameters", [])]
            names = {_deref(p)["name"] for p in params if _deref(p)["in"] == "path"}
            assert names == declared, f"{method.upper()} {path}: path parameters {names} != {declared}"


def _deref(node: dict) -> dict:
    ref = node.get("$ref")
    if ref is None:
        return node
    target = SPEC
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    return target


def test_every_reference_resolves():
    refs = set(re.findall(r"\$ref: \"?([^\"\s]+)\"?", SPEC_TEXT))
    assert refs
    for ref in refs:
        assert ref.startswith("#/components/"), ref
        _deref({"$ref": ref})


def test_openapi_spec_validator():
    validator = require_module("openapi_spec_validator")
    validator.validate(SPEC)


def documented_route(pattern: str) -> bool:
    return any(pattern == p or pattern.startswith(p + "/") or pattern == p + "/?" for p in DOCUMENTED)


def test_every_documented_route_family_is_complete_with_its_methods():
    missing = []
    for pattern, handler in ROUTES:
        if not documented_route(pattern):
            continue
        documented = [SPEC_PATHS[t] for t in templates(pattern) if t in SPEC_PATHS]
        if not documented:
            missing.append(pattern)
            continue
        for path in documented:
            ops = {m for m in SPEC["paths"][path] if m in METHODS}
            assert ops == implemented(handler), (
                f"{path}: spec documents {sorted(ops)}, {handler.__name__} serves {sorted(implemented(handler))}")
    assert not missing, f"routes missing from openapi.yaml: {missing}"


def test_every_documented_path_is_served():
    for anon, path in SPEC_PATHS.items():
        if path in PENDING and anon not in SERVED:
            continue
        assert anon in SERVED, f"openapi.yaml documents {path}, which routes() does not serve"
        ops = {m for m in SPEC["paths"][path] if m in METHODS}
        assert ops <= implemented(SERVED[anon]), f"{path}: {sorted(ops)} not all served"


def test_rest_server_prefix_is_an_alias():
    assert PREFIX in ROUTE_PREFIXES and "/rest-server/api/v2" in ROUTE_PREFIXES
    v2 = {p.removeprefix(PREFIX) for p, _ in ROUTES if p.startswith(PREFIX)}
    alias = {p.removeprefix("/rest-server/api/v2") for p, _ in ROUTES if p.startswith("/rest-server/api/v2")}
    assert v2 == alias
    assert any(s["url"] == "/rest-server" for s in SPEC["servers"])


def test_extensions_are_marked():
    text = SPEC_TEXT
    assert text.count("x-pai-hub-extension: true") >= 5
    logs = next(p for p in SPEC["paths"] if p.endswith("/logs/{logName}"))
    op = SPEC["paths"][logs]["get"]
    assert op["x-pai-hub-extension"] is True
    assert {p["name"] for p in op["parameters"]} >= {"offset", "tail-mode"}
    assert op["responses"]["200"]["headers"]["X-Log-Offset"]["x-pai-hub-extension"] is True
    events = SPEC["paths"]["/api/v2/jobs/{frameworkName}/events"]["get"]["responses"]["200"]["content"]
    assert events["text/event-stream"]["x-pai-hub-extension"] is True
    assert SPEC["components"]["schemas"]["WaitingReason"]["x-pai-hub-extension"] is True


def test_error_codes_match_the_code():
    """Every code the API raises is listed in the Error schema, and nothing else."""
    import pai_hub.api

    source = "".join(f.read_text() for f in files(pai_hub.api).iterdir() if f.name.endswith(".py"))
    used = set(re.findall(r"\"([A-Z][A-Za-z]+Error)\"", source))
    used.add("UnknownError")
    listed = set(SPEC["components"]["schemas"]["Error"]["properties"]["code"]["enum"])
    assert used == listed


def test_route_templates_spell_out_alternatives():
    assert templates(r"/items/([^/]+)/categor(?:y|ies)") == {"/items/{}/category", "/items/{}/categories"}
    assert templates(r"/items/([^/]+)/tags?/([^/]+)") == {"/items/{}/tags/{}", "/items/{}/tag/{}"}
    assert templates(r"/marketplace/api/?") == {"/marketplace/api"}


def test_metrics_and_marketplace_are_documented():
    assert "/metrics" in SPEC["paths"]
    market = [p for p in SPEC["paths"] if p.startswith("/marketplace/api")]
    served = {t for pattern, _ in ROUTES if pattern.startswith("/marketplace/api") for t in templates(pattern)}
    assert len(market) >= 16 and set(map(anonymous, market)) <= served
    assert "x-marketplace-api" not in SPEC  # one place: paths
