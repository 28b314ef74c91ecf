#!/usr/bin/env bash
# A local Prefect server on 127.0.0.1 (UI at http://127.0.0.1:PORT), for trying the deployments.
#   bash deployments/local_server.sh            # port 4200
#   PREFECT_PORT=4321 bash deployments/local_server.sh
# The UI is a page in the browser that calls the API itself: it is told where (PREFECT_UI_API_URL),
# so a server on any port serves a UI that talks to that port, not to 4200. Clients (workers, flows,
# `prefect deploy`) need PREFECT_API_URL=http://127.0.0.1:PORT/api; the script prints it.
set -euo pipefail
PREFECT="${PREFECT:-prefect}"
PORT="${PREFECT_PORT:-4200}"
HOST="${PREFECT_HOST:-127.0.0.1}"
export PREFECT_UI_API_URL="${PREFECT_UI_API_URL:-http://$HOST:$PORT/api}"
export PREFECT_API_URL="${PREFECT_API_URL:-http://$HOST:$PORT/api}"
echo "Prefect UI at http://$HOST:$PORT ; clients: export PREFECT_API_URL=$PREFECT_API_URL" >&2
exec "$PREFECT" server start --host "$HOST" --port "$PORT"
