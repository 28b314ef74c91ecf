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
exec "$PREFECT" worker start --pool "$pool" --type process "$@"
