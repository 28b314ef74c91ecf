#!/usr/bin/env bash
# Start a process worker for one pool, from the repository root (flow code is read from here).
#   bash deployments/start_worker.sh qcos
#   bash deployments/start_worker.sh gpu        # on the GPU machine (uses .venv-gpu when it exists)
#   bash deployments/start_worker.sh lumi       # on a LUMI login node
#   bash deployments/start_worker.sh cloud-qpu  # where the cloud credentials are reachable
set -euo pipefail
pool="${1:?usage: start_worker.sh POOL [extra prefect worker options]}"
shift
cd "$(dirname "$0")/.."
# The worker's interpreter runs the flow runs: the gpu pool wants the GPU environment
# (deployments/gpu_env.sh), with the CUDA builds of Aer and cuQuantum.
if [ -z "${PREFECT:-}" ] && [ "$pool" = gpu ] && [ -x .venv-gpu/bin/prefect ]; then
    PREFECT=.venv-gpu/bin/prefect
    echo "gpu pool: using the GPU environment (.venv-gpu)" >&2
fi
PREFECT="${PREFECT:-prefect}"
# Client retries (docs/production.md): the worker and the flow runs it starts retry API answers 503, 429,
# 502 and 408, timeouts and dropped connections, backing off 2, 4, 8 ... s (with jitter) per attempt.
# Prefect's 5 retries give up after about a minute; 7 ride out about 4 minutes (a server restart, a
# PostgreSQL failover, bursts of 503 "database is locked"), and the wider jitter spreads the retries
# of runs refused together. No number of retries makes SQLite safe under many runs: use PostgreSQL
# (deployments/postgres_server.sh). A value set in the environment or a Prefect profile wins.
client_default() {
    if [ -z "${!1:-}" ] && ! grep -qs "^ *$1 *=" "${PREFECT_HOME:-${HOME:-}/.prefect}/profiles.toml"; then
        export "$1=$2"
    fi
}
client_default PREFECT_CLIENT_MAX_RETRIES 7
client_default PREFECT_CLIENT_RETRY_JITTER_FACTOR 0.5
exec "$PREFECT" worker start --pool "$pool" --type process "$@"
