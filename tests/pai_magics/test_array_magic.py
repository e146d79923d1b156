"""``%%pai submit --array``: a cell as a job array, against a real server."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError

from pai_client.client import PaiClient


@pytest.fixture
def shell():
    from IPython.testing.globalipapp import get_ipython, start_ipython

    ip = start_ipython() or get_ipython()
    ip.run_line_magic("load_ext", "pai_magics")
    return ip


def test_a_cell_runs_once_per_array_index(shell, server, capsys, monkeypatch):
    monkeypatch.setenv("PAI_URL", server.url)
    monkeypatch.setenv("PAI_TOKEN", server.admin_token)
    cell = "import os\nprint('index', os.environ['PAI_ARRAY_INDEX'], 'of', os.environ['PAI_ARRAY_COUNT'])\n"
    shell.run_cell_magic("pai", "submit --name cellsweep --memory 256 --array 0-4:2", cell)
    assert capsys.readouterr().out == "submitted 3 jobs (cellsweep-0 ... cellsweep-4)\n"
    with PaiClient(server.url, server.admin_token) as c:
        assert c.wait("cellsweep-4", timeout=60)["jobStatus"]["state"] == "SUCCEEDED"
        assert c.log("cellsweep-4")[0] == "index 4 of 3\n"
    shell.run_cell_magic("pai", "submit --name cellsweep --memory 256 --array 4", cell)
    assert "array element 4: Job admin~cellsweep-4 already exists" in capsys.readouterr().err
    with pytest.raises(UsageError, match="--wait follows one job"):
        shell.run_cell_magic("pai", "submit --name other --array 0-1 --wait", cell)
