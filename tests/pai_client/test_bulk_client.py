"""Bulk submission from the client side: ``submit_many`` (defined once, both transports) and
``pai job submit --array``."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from pai_client import AsyncPaiClient, PaiClient, PaiError
from tests.pai_client.test_cli import pai
from tests.server import job_yaml


class RecordingPai:
    """Answers a batch like the server does; keeps each request's path and decoded body."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, object]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.seen.append((str(request.url.raw_path.decode()), body))
        count = len(body) if isinstance(body, list) else 2
        return httpx.Response(202, json={"status": 202, "message": "ok", "count": count, "names": ["a", "b"][:count]})


def run_sync(fake: RecordingPai, *args: object, **kwargs: object) -> dict:
    c = PaiClient("http://pai.test", "tok")
    c._http = httpx.Client(base_url=c.url, transport=httpx.MockTransport(fake))
    return c.submit_many(*args, **kwargs)


def run_async(fake: RecordingPai, *args: object, **kwargs: object) -> dict:
    async def go() -> dict:
        c = AsyncPaiClient("http://pai.test", "tok")
        c._http = httpx.AsyncClient(base_url=c.url, transport=httpx.MockTransport(fake))
        try:
            return await c.submit_many(*args, **kwargs)
        finally:
            await c._http.aclose()

    return asyncio.run(go())


@pytest.mark.parametrize("run", [run_sync, run_async])
def test_both_transports_send_one_batch_request(run):
    fake = RecordingPai()
    text = job_yaml("one", ["true"])
    assert run(fake, [text, {"protocolVersion": 2, "name": "two"}])["count"] == 2
    assert run(fake, text, array="0-9:3", dry_run=True)["names"] == ["a", "b"]
    (list_path, list_body), (array_path, array_body) = fake.seen
    assert list_path == "/api/v2/jobs/batch" and list_body[0] == text and "name: two" in list_body[1]
    assert array_path == "/api/v2/jobs/batch?dryRun=true" and array_body == {"job": text, "array": "0-9:3"}


def test_one_job_without_an_array_is_refused_before_sending():
    fake = RecordingPai()
    with pytest.raises(PaiError, match="give a list of jobs, or one job and array="):
        run_sync(fake, job_yaml("one", ["true"]))
    assert fake.seen == []


def test_pai_job_submit_array(server, tmp_path):
    env = {"PAI_URL": server.url, "PAI_TOKEN": server.admin_token}
    job = tmp_path / "sweep.yaml"
    job.write_text(job_yaml("cli-sweep", ["echo $PAI_ARRAY_INDEX"]))
    r = pai("job", "submit", str(job), "--array", "0-2", "--dry-run", env=env)
    assert (r.returncode, r.stdout) == (0, "valid: 3 jobs (cli-sweep-0 ... cli-sweep-2); not submitted\n"), r.stderr
    r = pai("job", "submit", str(job), "--array", "0-2", env=env)
    assert (r.returncode, r.stdout) == (0, "submitted 3 jobs (cli-sweep-0 ... cli-sweep-2)\n"), r.stderr
    r = pai("job", "submit", str(job), "--array", "2-4", env=env)
    assert r.returncode == 1 and "array element 2: Job admin~cli-sweep-2 already exists" in r.stderr
    assert "Traceback" not in r.stderr
    r = pai("job", "submit", str(job), "--array", "4-", env=env)
    assert r.returncode == 1 and "array: '4-' is not an index" in r.stderr
