"""Kubernetes backend: tasks are Pods bound by the PAI scheduler (docs/kubernetes.md)."""

from pai_hub.backends.kubernetes.backend import KubernetesBackend, node_info

__all__ = ["KubernetesBackend", "node_info"]
