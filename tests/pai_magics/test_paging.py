"""``%pai jobs`` and the ``JobsTable`` widget page through a real server's 120 jobs: each asks for
one page (offset/limit with the total), and paging reaches the last job."""

from __future__ import annotations

import re

import httpx
import pytest
from IPython.core.error import UsageError

from pai_magics.widgets import JobsTable
from tests.server import job_yaml, wait_state

JOBS = 120


@pytest.fixture(scope="module")
def alice(server) -> str:
    token = server.add_user("alice")
    with server.client(token) as c:
        r = c.post("/api/v2/jobs", params={"array": f"0-{JOBS - 1}"}, content=job_yaml("nbp", ["true"]),
                   headers={"Content-Type": "text/yaml"})
        assert r.status_code == 202, r.text
        wait_state(c, f"alice~nbp-{JOBS - 1}", {"SUCCEEDED"}, timeout=120)
    return token


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[httpx.URL]:
    """Every job-list request the client sends (the real requests, recorded on their way out)."""
    seen: list[httpx.URL] = []
    send = httpx.Client.send

    def recording(self: httpx.Client, request: httpx.Request, **kwargs: object) -> httpx.Response:
        if request.url.path == "/api/v2/jobs":
            seen.append(request.url)
        return send(self, request, **kwargs)

    monkeypatch.setattr(httpx.Client, "send", recording)
    return seen


@pytest.fixture
def shell(server, alice, monkeypatch: pytest.MonkeyPatch):
    from IPython.testing.globalipapp import get_ipython, start_ipython

    monkeypatch.setenv("PAI_URL", server.url)
    monkeypatch.setenv("PAI_TOKEN", alice)
    ip = start_ipython() or get_ipython()
    ip.run_line_magic("load_ext", "pai_magics")
    return ip


def names(out: str) -> list[str]:
    return [line.split()[0] for line in out.splitlines()[1:-1]]


def test_pai_jobs_text_pages_with_offset_and_a_next_page_hint(shell, asked, capsys):
    shell.run_line_magic("pai", "jobs --text --limit 50")
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == "jobs 1–50 of 120; next page: %pai jobs --text --limit 50 --offset 50"
    seen = names(out)
    while (hint := re.search(r"next page: %pai (jobs .*)$", out.splitlines()[-1])):
        shell.run_line_magic("pai", hint.group(1))
        out = capsys.readouterr().out
        seen += names(out)
    assert out.splitlines()[-1] == "jobs 101–120 of 120"
    assert seen[0] == f"nbp-{JOBS - 1}" and seen[-1] == "nbp-0" and len(set(seen)) == JOBS
    assert [(u.params["offset"], u.params["limit"], u.params["withTotalCount"]) for u in asked] == \
        [("0", "50", "true"), ("50", "50", "true"), ("100", "50", "true")]


def test_pai_jobs_page_and_filters(shell, asked, capsys):
    shell.run_line_magic("pai", "jobs --text --keyword nbp-1 --limit 10 --page 3")
    out = capsys.readouterr().out
    # nbp-1, nbp-10..19, nbp-100..119: 31 jobs; page 3 of 10 is the jobs 21-30
    assert out.splitlines()[-1] == "jobs 21–30 of 31; next page: %pai jobs --text --keyword nbp-1 --limit 10 --offset 30"
    assert (asked[-1].params["offset"], asked[-1].params["limit"], asked[-1].params["keyword"]) == ("20", "10", "nbp-1")
    with pytest.raises(UsageError, match="--page"):
        shell.run_line_magic("pai", "jobs --text --page 0")
    with pytest.raises(UsageError, match="not allowed with argument"):
        shell.run_line_magic("pai", "jobs --text --page 2 --offset 5")


def test_jobs_table_widget_next_and_previous(server, alice, asked):
    t = JobsTable(server.url, alice, limit=50)
    assert (len(t.rows), t.count.value, t.previous_button.disabled) == (50, "jobs 1–50 of 120", True)
    t.next_button.click()
    t.next_button.click()
    assert (len(t.rows), t.count.value, t.next_button.disabled) == (20, "jobs 101–120 of 120", True)
    assert t.rows[-1]["name"] == "nbp-0"
    t.previous_button.click()
    assert t.count.value == "jobs 51–100 of 120"
    t.keyword_filter.value = "nbp-11"  # a filter lists again from the first page
    assert (t.count.value, t.next_button.disabled) == ("jobs 1–11 of 11", True)
    assert [(u.params["offset"], u.params["limit"]) for u in asked] == \
        [("0", "50"), ("50", "50"), ("100", "50"), ("50", "50"), ("0", "50")]
    assert all(u.params["withTotalCount"] == "true" for u in asked)
