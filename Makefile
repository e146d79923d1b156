# PAI Hub: `make run` starts the platform, `make test` runs everything CI runs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA_DIR ?= $(HOME)/.pai-hub
PORT ?= 9186
HUB_PORT ?= 8000
CHP := node_modules/.bin/configurable-http-proxy

.PHONY: install run test lint bench clean e2e-deps chromium prometheus slurm e2e-k8s labextension isolation-tools

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@# an editable install gets no data files: enable pai_extension in every Jupyter server of the venv
	mkdir -p $(VENV)/etc/jupyter/jupyter_server_config.d
	ln -sfn $(abspath pai_extension/jupyter-config/jupyter_server_config.d/pai_extension.json) \
	  $(VENV)/etc/jupyter/jupyter_server_config.d/pai_extension.json
	touch $@

install: $(BIN)/.installed isolation-tools

# Users' tasks and notebooks run as their own Unix accounts in a bubblewrap sandbox when the platform
# runs as root (PaiHub.isolation auto; docs/admin-guide.md, "Security model"): bwrap for the sandbox,
# iptables for the network rules between users' services. Needs root only for what is missing.
isolation-tools:
	@if command -v bwrap >/dev/null 2>&1 && { command -v iptables >/dev/null 2>&1 || [ -x /usr/sbin/iptables ]; }; then :; \
	elif [ "$$(id -u)" != 0 ]; then echo "note: bubblewrap/iptables missing and not root: tasks will run as you (isolation none)"; \
	else apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends bubblewrap iptables; fi

# The platform: JupyterHub + configurable-http-proxy + the PAI service (REST API on $(PORT)).
run: install $(CHP) labextension
	$(BIN)/python -m pai_hub.hub --ip 127.0.0.1 --port $(HUB_PORT) --pai-port $(PORT) --data-dir $(DATA_DIR)

# What the hub and the end-to-end tests need beyond PyPI: configurable-http-proxy from npm (into
# node_modules/ here; the newest release this machine's Node.js supports) and Debian's chromium.
# Needs root only for what is missing (apt-get); a no-op once installed.
e2e-deps: $(CHP) chromium prometheus slurm

$(CHP):
	@command -v npm >/dev/null 2>&1 || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y nodejs npm; }
	@major=$$(node -p 'process.versions.node.split(".")[0]'); \
	if [ "$$major" -ge 22 ]; then v='^5'; elif [ "$$major" -ge 20 ]; then v='~5.2.0'; else v='~5.1.0'; fi; \
	echo "npm install configurable-http-proxy@$$v (node $$major)"; \
	npm install --no-save --no-package-lock --no-audit --no-fund --prefix . "configurable-http-proxy@$$v"

chromium:
	@command -v chromium >/dev/null 2>&1 || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }

# A real Slurm (slurmctld, slurmd, munge) on 127.0.0.1 for the Slurm backend's tests.
slurm:
	@command -v slurmctld >/dev/null 2>&1 && command -v munged >/dev/null 2>&1 || \
	  { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends slurm-wlm munge; }

# A real Prometheus (and promtool) scrapes /metrics and checks the exported alert rules in the tests.
prometheus:
	@command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || \
	  { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y prometheus; }

# The job suite against a real Kubernetes cluster from $KUBECONFIG (skipped without one).
e2e-k8s: install
	bash scripts/e2e-k8s.sh

lint: install
	$(BIN)/ruff check .

# The JupyterLab extension (TypeScript), built with the jlpm that ships with JupyterLab; an editable
# install gets no data files, so the build is linked into the venv for `make run` and the tests.
LABEXT := labextension/build/pai-hub/package.json
$(LABEXT): labextension/package.json labextension/yarn.lock $(wildcard labextension/src/*.ts labextension/style/*)
	cd labextension && PATH=$(abspath $(BIN)):$$PATH jlpm install && PATH=$(abspath $(BIN)):$$PATH jlpm build
	mkdir -p $(VENV)/share/jupyter/labextensions
	ln -sfn $(abspath labextension/build/pai-hub) $(VENV)/share/jupyter/labextensions/pai-hub

labextension: install $(LABEXT)

test: install e2e-deps labextension
	$(BIN)/ruff check .
	cd labextension && PATH=$(abspath $(BIN)):$$PATH jlpm test
	$(BIN)/python -m pytest -q tests

bench: install
	$(BIN)/python -m benchmarks.throughput

clean:
	rm -rf $(VENV) build *.egg-info labextension/node_modules labextension/lib labextension/build
