#!/usr/bin/env bash
# Create the QCOS work pools (process pools) on the Prefect server that PREFECT_API_URL names.
#   qcos       run-circuit, run-sweep and the nightly run
#   gpu        shards of nodes declared with work_pool: gpu
#   lumi       shards of nodes declared with work_pool: lumi (the worker runs on a LUMI login node)
#   cloud-qpu  shards of cloud QPU nodes
# and the automations of deployments/automations.py (crashed and stuck-cancelling runs).
set -euo pipefail
PREFECT="${PREFECT:-prefect}"
for pool in qcos gpu lumi cloud-qpu; do
  if "$PREFECT" work-pool inspect "$pool" >/dev/null 2>&1; then
    echo "work pool $pool exists"
  else
    "$PREFECT" work-pool create "$pool" --type process
  fi
done
# The automations that mark runs of dead workers Crashed and finish stuck cancellations.
PYTHON="${PYTHON:-$(dirname "$PREFECT")/python}"
[ -x "$PYTHON" ] || PYTHON=python3
"$PYTHON" "$(dirname "$0")/automations.py"
