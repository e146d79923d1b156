"""The one job-document builder against its golden cases (``tests/data/job_documents.json``).

The file is a JSON list of ``{"description": {...}, "document": {...}}``: ``description`` in the
format of :mod:`pai_client.jobdoc`'s docstring (camelCase keys), ``document`` the OpenPAI protocol
v2 job every builder — this one, and the Lab's TypeScript one — must produce from it, compared as
data. Every golden document is also a job the server's own validator accepts.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pai_client import jobdoc
from pai_hub import protocol

CASES = json.loads((Path(__file__).resolve().parents[1] / "data" / "job_documents.json").read_text())


@pytest.mark.parametrize("case", CASES, ids=[c["description"]["name"] for c in CASES])
def test_a_description_builds_its_golden_document(case):
    doc = jobdoc.build(jobdoc.JobDescription.from_json(case["description"]))
    assert doc == case["document"]
    protocol.load(yaml.safe_dump(_resolved(doc)))  # the server accepts it


def _resolved(doc: dict) -> dict:
    """The job as the server validates it, once marketplace references are resolved to URIs."""
    out = json.loads(json.dumps(doc))
    for p in out["prerequisites"]:
        if "marketplace" in p:
            ref = p.pop("marketplace")
            p["uri"] = ref if p["type"] == "dockerimage" else [f"https://example.com/{ref}"]
    return out


def test_the_builder_loads_by_path_with_the_standard_library_alone():
    """How the NNI trial launcher loads it: no httpx, no pai_client package, no PyYAML."""
    path = Path(jobdoc.__file__)
    code = ("import importlib.util, sys; s = importlib.util.spec_from_file_location('jd', sys.argv[1]); "
            "m = importlib.util.module_from_spec(s); sys.modules['jd'] = m; s.loader.exec_module(m); "
            "d = m.build(m.JobDescription('x', [m.RoleDescription('w', ['true'])])); "
            "print(d['taskRoles']['w']['dockerImage'], sorted(n for n in sys.modules if n.split('.')[0] in "
            "('httpx', 'yaml', 'pai_client', 'pai_hub')))")
    out = subprocess.run([sys.executable, "-I", "-c", code, str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split(maxsplit=1) == ["image", "[]\n"]
