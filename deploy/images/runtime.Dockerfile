# The task image: Python + pai-hub (for pai_runtime), entrypoint `python -m pai_runtime TASK_DIR`.
# The Kubernetes backend overrides the command with a small /bin/sh wrapper (see
# pai_hub/backends/kubernetes/manifests.py ENTRYPOINT_SCRIPT) that copies the spec from its ConfigMap,
# runs `python -m pai_runtime /pai/task`, streams the task's output to the container log and leaves
# exit.json as the termination message. Build from the repository root:
#   docker build -f deploy/images/runtime.Dockerfile -t pai-hub/runtime:0.1.0 .
# A job image (protocol dockerImage) can be based on this one: FROM pai-hub/runtime:0.1.0
FROM python:3.11-slim-bookworm

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends bash coreutils procps \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/pai-hub
COPY pyproject.toml README.md ./
COPY pai_hub ./pai_hub
COPY pai_runtime ./pai_runtime
COPY pai_magics ./pai_magics
COPY pai_spawner ./pai_spawner
COPY pai_extension ./pai_extension
RUN pip install --no-cache-dir . && rm -rf /root/.cache

WORKDIR /pai/task
ENTRYPOINT ["python", "-m", "pai_runtime"]
CMD ["/pai/task"]
