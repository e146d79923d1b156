from __future__ import annotations

import pytest

from pai_hub.scheduler.hived import HivedConfigError, SkuType, check_vc_safety, leaf_cells_for, load_config
from tests.requirements import require_reference

from .harness import HIVED, REFERENCE

CONFIGS = sorted([*HIVED.glob("example/config/*/hivedscheduler.yaml"), *HIVED.glob("example/feature/file/*.yaml"),
                  *HIVED.glob("branch-xiongyf-cell-as-sku/test/config/*/setting.yaml"),
                  REFERENCE / "openpai/rest-server-test-data/hivedscheduler.yaml"])


@pytest.mark.needs_reference(HIVED / "example/config", HIVED / "example/feature/file",
                             HIVED / "branch-xiongyf-cell-as-sku/test/config")
@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p).split("reference/")[-1])
def test_every_reference_config_loads(path):
    require_reference(path)
    load_config(path.read_text())


def test_design_addresses():
    cfg = load_config((HIVED / "example/config/design/hivedscheduler.yaml").read_text())
    top7 = cfg.physical_cells[7]
    assert [c.address for c in top7.children] == ["7/14", "7/15"]
    assert top7.children[0].children[0].address == "7/14/0.0.3.0"
    assert top7.children[0].pinned_cell_id == "VC1-YQW-DGX2"
    assert cfg.chains_of_leaf_type("DGX2-V100") == ("DGX2-V100-NODE", "4-DGX2-V100-NODE", "3-DGX2-V100-NODE")


def test_openpai_skus():
    cfg = load_config((REFERENCE / "openpai/rest-server-test-data/hivedscheduler.yaml").read_text())
    assert cfg.sku_types["K80"] == SkuType(1, 4, 8192)


BASE = """
physicalCluster:
  cellTypes:
    K80-NODE: {childCellType: K80, childCellNumber: 4, isNodeLevel: true}
    POOL: {childCellType: K80-NODE, childCellNumber: 2}
  physicalCells:
  - cellType: POOL
    cellChildren: [{cellAddress: n1}, {cellAddress: n2}]
virtualClusters:
  a: {virtualCells: [{cellType: POOL.K80-NODE, cellNumber: 1}]}
"""


@pytest.mark.parametrize("mutate, path, words", [
    (lambda s: s.replace("cellType: POOL\n", "cellType: NOPE\n"), "physicalCluster.physicalCells[0].cellType", "unknown cellType: NOPE"),
    (lambda s: s.replace("POOL.K80-NODE", "POOL.K99"), "virtualClusters.a.virtualCells[0].cellType", "cellType K99 in VirtualCells is not found"),
    (lambda s: s.replace("POOL.K80-NODE", "OTHER.K80-NODE"), "virtualClusters.a.virtualCells[0].cellType", "Chain OTHER does not exists"),
    (lambda s: s.replace("cellNumber: 1}", "cellNumber: 3}"), "virtualClusters", "Insufficient physical cells at chain POOL level 2: 3 needed, 2 available"),
    (lambda s: s.replace("cellType: POOL\n", "cellType: K80\n"), "physicalCluster.physicalCells[0].cellType", "unknown cellType: K80"),
    (lambda s: s.replace("cellNumber: 1}]}", "cellNumber: 1}], pinnedCells: [{pinnedCellId: X}]}"), "virtualClusters.a.pinnedCells[0].pinnedCellId", "pinned cell not found"),
    (lambda s: s.replace("childCellNumber: 4,", "childCellNumber: 0,"), "physicalCluster.cellTypes.K80-NODE.childCellNumber", "at least 1"),
    (lambda s: s.replace("[{cellAddress: n1}, {cellAddress: n2}]", "[{cellAddress: n1}]"), "physicalCluster.physicalCells[0].cellChildren", "2 children"),
    (lambda s: s.replace("childCellType: K80-NODE,", "childCellType: POOL,"), "physicalCluster.cellTypes", "cycle"),
])
def test_invalid_configs_name_key_and_reason(mutate, path, words):
    with pytest.raises(HivedConfigError) as e:
        load_config(mutate(BASE))
    assert e.value.path.startswith(path), e.value.path
    assert words in e.value.reason, e.value.reason


def test_top_cell_must_be_node_level_or_above():
    text = BASE.replace("cellType: POOL\n    cellChildren: [{cellAddress: n1}, {cellAddress: n2}]", "cellType: HALF") \
        .replace("K80-NODE: {", "HALF: {childCellType: K80, childCellNumber: 2}\n    K80-NODE: {")
    with pytest.raises(HivedConfigError) as e:
        load_config(text)
    assert "top cell must be node-level or above: HALF" in str(e.value)


def test_check_vc_safety_separately():
    cfg = load_config(BASE)
    check_vc_safety(cfg)
    unsafe = load_config(BASE.replace("cellNumber: 1}", "cellNumber: 3}"), check_safety=False)
    with pytest.raises(HivedConfigError):
        check_vc_safety(unsafe)


def test_leaf_cells_for():
    sku = SkuType(1, 4, 8192)
    assert leaf_cells_for(2, 1, 100, sku) == 2
    assert leaf_cells_for(0, 9, 0, sku) == 3
    assert leaf_cells_for(0, 0, 20000, sku) == 3
    assert leaf_cells_for(0, 0, 0, sku) == 1  # CPU-only / empty task still takes one leaf
    assert leaf_cells_for(0, 0, 0, None) == 1
    assert leaf_cells_for(3, 100, 1, None) == 3
    with pytest.raises(ValueError):
        leaf_cells_for(1, 0, 0, SkuType(0, 4, 100))


@pytest.mark.parametrize("old, new, path, reason", [
    ("cellNumber: 1}", "cellNumber: two}", "virtualClusters.a.virtualCells[0].cellNumber",
     "must be an integer, got 'two' (how many cells of that type the virtual cluster gets)"),
    ("cellNumber: 1}", "cellNumber: -1}", "virtualClusters.a.virtualCells[0].cellNumber", "must be at least 0, got -1"),
    ("cellNumber: 1}", "cellNumber: 1.5}", "virtualClusters.a.virtualCells[0].cellNumber", "must be an integer, got 1.5"),
    ("childCellType: K80, ", "", "physicalCluster.cellTypes.K80-NODE.childCellType",
     "is required (the type of the child cells)"),
    ("isNodeLevel: true", "isNodeLevel: maybe", "physicalCluster.cellTypes.K80-NODE.isNodeLevel",
     "must be true or false, got 'maybe'"),
    ("physicalCluster:\n", "physicalCluster:\n  skuTypes: {K80: {gpu: 1, memory: lots}}\n",
     "physicalCluster.skuTypes.K80.memory", "a quantity such as 8192Mi, got 'lots'"),
    ("virtualClusters:\n  a: {virtualCells: [{cellType: POOL.K80-NODE, cellNumber: 1}]}", "virtualClusters: []",
     "virtualClusters", "must be a mapping, got list"),
    ("cellNumber: 1}]}", "cellNumber: 1}], pinnedCells: [{}]}", "virtualClusters.a.pinnedCells[0].pinnedCellId",
     "is required (the pinnedCellId of a cell in physicalCells)"),
])
def test_wrong_types_name_the_full_key_path_and_the_fix(old, new, path, reason):
    assert old in BASE
    with pytest.raises(HivedConfigError) as e:
        load_config(BASE.replace(old, new))
    assert e.value.path == path
    assert reason in e.value.reason
    assert str(e.value).startswith(f"{path}: ")


def test_every_wrong_key_is_reported_at_once():
    text = BASE.replace("physicalCluster:\n", "physicalCluster:\n  skuTypes: {K80: {gpu: -1, cpu: x}}\n")
    with pytest.raises(HivedConfigError) as e:
        load_config(text)
    assert e.value.path == "physicalCluster.skuTypes.K80.gpu"
    assert "physicalCluster.skuTypes.K80.cpu: must be a number, got 'x'" in e.value.reason


def test_names_may_be_numbers_and_sections_may_be_empty():
    cfg = load_config(BASE.replace("  a: {", "  1: {") + "  empty:\n")
    assert list(cfg.virtual_clusters) == ["1", "empty"]
    assert load_config("").virtual_clusters == {}
