#!/usr/bin/env bash
# A local Prefect server on 127.0.0.1:4200 (UI at http://127.0.0.1:4200), for trying the deployments.
set -euo pipefail
PREFECT="${PREFECT:-prefect}"
exec "$PREFECT" server start --host 127.0.0.1 --port "${PREFECT_PORT:-4200}"
