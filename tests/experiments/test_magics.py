"""%pai nni: experiments from the notebook, with a live trials view (real IPython, server and NNI 3.0)."""

from __future__ import annotations

import pytest
import yaml

from tests.experiments.test_experiments import TRIAL, body


@pytest.fixture
def shell():
    from IPython.testing.globalipapp import get_ipython, start_ipython

    ip = start_ipython() or get_ipython()
    ip.run_line_magic("load_ext", "pai_magics")
    return ip


def test_nni_magics_create_watch_and_list(make_server, shell, tmp_path, capsys, monkeypatch):
    server = make_server("--node-cpu", "8")
    monkeypatch.setenv("PAI_URL", server.url)
    monkeypatch.setenv("PAI_TOKEN", server.admin_token)
    spec = tmp_path / "exp.yaml"
    spec.write_text(yaml.safe_dump(body(TRIAL, trials=3, concurrency=3)))
    view = shell.run_line_magic("pai", f"nni create {spec} --wait")
    out = capsys.readouterr().out
    assert "created experiment" in out and ": DONE" in out
    e = view.experiment
    assert (e["state"] == "DONE" and "RUNNING" in view.states_seen) or view.states_seen[-1] == "DONE"
    assert len(e["trials"]) == 3 and all(t["final"] is not None for t in e["trials"])
    assert all(len(t["intermediate"]) == 2 for t in e["trials"])
    assert "<td>2</td>" in view.trials.value  # the widget's table shows the intermediate results
    shell.run_line_magic("pai", "nni list")
    assert e["id"] in capsys.readouterr().out
    with pytest.raises(Exception, match="which experiment"):
        shell.run_line_magic("pai", "nni show")
