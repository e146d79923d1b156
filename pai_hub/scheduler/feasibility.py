"""Reject at submit time what could never be placed, naming the field: better than waiting forever."""

from __future__ import annotations

from collections.abc import Iterable

from ..backends.base import NodeInfo


def infeasible_reason(roles: list[tuple[str, int, int, int, int]], nodes: Iterable[NodeInfo]) -> str | None:
    """``roles`` are ``(name, instances, cpu, memory_mb, gpu)``. None when the job could fit."""
    nodes = list(nodes)
    if not nodes:
        return "the cluster has no nodes"
    for name, _instances, cpu, memory_mb, gpu in roles:
        field = f"taskRoles.{name}.resourcePerInstance"
        if not any(len(n.gpus) >= gpu for n in nodes):
            return (f"{field}.gpu: {gpu} GPUs per instance requested, but the largest node has "
                    f"{max(len(n.gpus) for n in nodes)}")
        if not any(n.cpu >= cpu for n in nodes):
            return f"{field}.cpu: {cpu} CPUs per instance requested, but the largest node has {max(n.cpu for n in nodes)}"
        if not any(n.memory_mb >= memory_mb for n in nodes):
            return (f"{field}.memoryMB: {memory_mb} MB per instance requested, but the largest node has "
                    f"{max(n.memory_mb for n in nodes)} MB")
        if not any(len(n.gpus) >= gpu and n.cpu >= cpu and n.memory_mb >= memory_mb for n in nodes):
            return f"{field}: no single node has {gpu} GPUs, {cpu} CPUs and {memory_mb} MB together"
    total_gpu = sum(i * g for _, i, _, _, g in roles)
    cluster_gpu = sum(len(n.gpus) for n in nodes)
    if total_gpu > cluster_gpu:
        return f"taskRoles: the job needs {total_gpu} GPUs together but the cluster has {cluster_gpu}"
    return None
