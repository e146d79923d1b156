"""``extras.hivedScheduler`` checked by the pure protocol (pai_hub/protocol/hived.py), as OpenPAI's
``config/v2/hived.js`` schema and ``middlewares/v2/hived.js`` check it whatever the cluster: the
documents OpenPAI's web portal writes (``skuNum``, ``skuType: null``) pass, the ones OpenPAI refuses
are refused naming the field."""

from __future__ import annotations

import pytest

from pai_hub import protocol
from pai_hub.protocol import InvalidProtocol

HEAD = ("protocolVersion: 2\nname: j\ntype: job\n"
        "prerequisites:\n  - {name: image, type: dockerimage, uri: python:3.11}\n"
        "taskRoles:\n"
        "  ps: {dockerImage: image, resourcePerInstance: {cpu: 1, memoryMB: 64, gpu: 0}, commands: [a]}\n"
        "  worker: {dockerImage: image, resourcePerInstance: {cpu: 1, memoryMB: 64, gpu: 1}, commands: [a]}\n")


def with_hived(block: str) -> str:
    return HEAD + "extras:\n  hivedScheduler: " + block + "\n"


@pytest.mark.parametrize("block", [
    "{taskRoles: {worker: {skuNum: 2, skuType: null}}}",  # what the web portal writes
    "{taskRoles: {worker: {skuNum: 1, skuType: null}, ps: {skuNum: 1}}}",
    "{taskRoles: {worker: {skuNumber: 3}}}",
    "{jobPriorityClass: prod, taskRoles: {worker: {pinnedCellId: cell-1}}}",
    "{jobPriorityClass: crit}",
    "{jobPriorityClass: null, taskRoles: null}",
    "{futureKey: 1, taskRoles: {worker: {futureRoleKey: x, affinityGroupName: null}}}",  # no additionalProperties: false
    "{taskRoles: {ps: {affinityGroupName: g}, worker: {affinityGroupName: g}}}",
    "null",
])
def test_accepted(block: str) -> None:
    protocol.check(with_hived(block), username="alice")


@pytest.mark.parametrize(("block", "path", "says"), [
    ("[1]", "extras.hivedScheduler", "must be a mapping"),
    ("{jobPriorityClass: urgent}", "extras.hivedScheduler.jobPriorityClass", "must be one of crit, prod, test, oppo"),
    ("{taskRoles: [worker]}", "extras.hivedScheduler.taskRoles", "must be a mapping"),
    ("{taskRoles: {nope: {skuType: K80}}}", "extras.hivedScheduler.taskRoles.nope", "no such task role"),
    ("{taskRoles: {worker: 3}}", "extras.hivedScheduler.taskRoles.worker", "must be a mapping"),
    ("{taskRoles: {worker: {skuType: 8}}}", "extras.hivedScheduler.taskRoles.worker.skuType", "string or null"),
    ("{taskRoles: {worker: {skuType: K80, pinnedCellId: c}}}", "extras.hivedScheduler.taskRoles.worker",
     "not both"),
    ("{taskRoles: {ps: {affinityGroupName: g, skuType: CPU}, worker: {affinityGroupName: g, skuType: K80}}}",
     "extras.hivedScheduler.taskRoles.worker.affinityGroupName", "other SKUs"),
])
def test_refused_naming_the_field(block: str, path: str, says: str) -> None:
    with pytest.raises(InvalidProtocol) as caught:
        protocol.check(with_hived(block), username="alice")
    assert [(e.path, says in e.message) for e in caught.value.errors] == [(path, True)], caught.value.errors
