#!/usr/bin/env bash
# The Kubernetes backend's job suite against a real cluster (make e2e-k8s; docs/kubernetes.md).
# Skips, successfully, when KUBECONFIG is unset. Environment:
#   KUBECONFIG               the cluster (required)
#   PAI_K8S_NAMESPACE        namespace for the test pods (default pai-e2e; created if missing, with kubectl)
#   PAI_K8S_RUNTIME_IMAGE    the runtime image the nodes can pull (default pai-hub/runtime:0.1.0)
#   PAI_E2E_GPUS=1           also run a 1-GPU task (needs a node with allocatable nvidia.com/gpu)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"

if [ -z "${KUBECONFIG:-}" ]; then
  echo "e2e-k8s: SKIPPED - KUBECONFIG is not set (point it at a cluster to run the job suite)"
  exit 0
fi
if [ ! -r "$KUBECONFIG" ]; then
  echo "e2e-k8s: KUBECONFIG=$KUBECONFIG is not readable" >&2
  exit 2
fi
export PAI_K8S_NAMESPACE="${PAI_K8S_NAMESPACE:-pai-e2e}"
"$PY" -c 'import kubernetes' 2>/dev/null || "$PY" -m pip install --quiet 'kubernetes>=29'
if command -v kubectl >/dev/null 2>&1; then
  kubectl get namespace "$PAI_K8S_NAMESPACE" >/dev/null 2>&1 || kubectl create namespace "$PAI_K8S_NAMESPACE"
fi
echo "e2e-k8s: cluster from $KUBECONFIG, namespace $PAI_K8S_NAMESPACE, image ${PAI_K8S_RUNTIME_IMAGE:-pai-hub/runtime:0.1.0}"
PAI_E2E_K8S=1 exec "$PY" -m pytest -q -p no:cacheprovider tests/backends/kubernetes "$@"
