# The control plane image: JupyterHub + the PAI service + the Kubernetes backend.
#   docker build -f deploy/images/hub.Dockerfile -t pai-hub/hub:0.1.0 .
FROM python:3.11-slim-bookworm

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nodejs npm \
 && npm install -g configurable-http-proxy@~5.1.0 \
 && apt-get purge -y npm && apt-get autoremove -y && rm -rf /var/lib/apt/lists/* /root/.npm

WORKDIR /opt/pai-hub
COPY pyproject.toml README.md ./
COPY pai_hub ./pai_hub
COPY pai_runtime ./pai_runtime
COPY pai_magics ./pai_magics
COPY pai_spawner ./pai_spawner
COPY pai_extension ./pai_extension
# kubernetes: the backend's client (until pyproject lists it); psycopg: PostgreSQL for the store.
RUN pip install --no-cache-dir . 'kubernetes>=29' 'psycopg[binary]>=3.1' && rm -rf /root/.cache

RUN useradd --create-home --uid 1000 pai && mkdir -p /data && chown pai /data
USER 1000
EXPOSE 8000 9186
ENTRYPOINT []
CMD ["pai-hub", "--ip", "0.0.0.0", "--data-dir", "/data"]
