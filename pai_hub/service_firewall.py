"""The loopback firewall of per-user services, as the control plane knows it.

The rules and their reasons live in :mod:`pai_runtime.firewall` (standard library only), because the
launcher guards tasks' ports with the same code; this module keeps the name the experiments service
and its tests import.
"""

from __future__ import annotations

from pai_runtime.firewall import CHAIN, JUMP, TASK_CHAIN, FirewallError, ServiceFirewall, instance_tag

__all__ = ["CHAIN", "JUMP", "TASK_CHAIN", "FirewallError", "ServiceFirewall", "instance_tag"]
