"""The application's wiring: configuration errors stop the server with the key and the fix."""

import asyncio

import pytest

from pai_hub.app import PaiHub


def test_an_unknown_backend_is_refused_by_name(tmp_path):
    app = PaiHub(data_dir=str(tmp_path), backend="no-such-backend")
    with pytest.raises(SystemExit) as exc:
        asyncio.run(app.start_services())
    assert "PaiHub.backend: no backend 'no-such-backend'; installed: kubernetes, local, slurm" in str(exc.value)


def test_an_invalid_cluster_config_names_the_key(tmp_path):
    (tmp_path / "cluster.yaml").write_text("physicalCluster: {cellTypes: {N: {childCellType: G, childCellNumber: 0}}}\n")
    app = PaiHub(data_dir=str(tmp_path))
    with pytest.raises(SystemExit) as exc:
        asyncio.run(app.start_services())
    assert "cluster.yaml" in str(exc.value) and "childCellNumber" in str(exc.value)
