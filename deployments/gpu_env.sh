#!/usr/bin/env bash
# Build the GPU environment of a CUDA machine (the default install stays CPU-only).
#
#   bash deployments/gpu_env.sh            # .venv-gpu: QCOS + qiskit-aer-gpu + cuQuantum, one CUDA 12 stack
#   bash deployments/gpu_env.sh --no-aer   # .venv-gpu: QCOS + cuQuantum for this driver's CUDA major (12 or 13)
#
# qiskit-aer-gpu replaces the qiskit_aer module and is built for CUDA 12 (it runs on CUDA 12 and newer
# drivers), and it pins cuquantum-cu12 below 24.11; with it, local_gpu_cuquantum uses the matching
# cuquantum-python-cu12 24.8. Without Aer GPU, the cuQuantum extra follows the driver: cuquantum-cu13 on a
# CUDA 13 driver. Set VENV to build elsewhere, PYTHON to pick the interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv-gpu}
PYTHON=${PYTHON:-python3}
AER=1
for arg in "$@"; do
    case "$arg" in
        --no-aer) AER=0 ;;
        -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
        *) echo "unknown argument: $arg (see --help)" >&2; exit 2 ;;
    esac
done

if ! command -v nvidia-smi >/dev/null 2>&1; then
    echo "nvidia-smi not found: this machine has no NVIDIA driver. GPU nodes run EMULATED on the CPU" \
         "in the default install (make install)." >&2
    exit 1
fi
CUDA_MAJOR=$(nvidia-smi | sed -n 's/.*CUDA Version: *\([0-9]*\)\..*/\1/p' | head -n1)
if [ -z "$CUDA_MAJOR" ]; then
    echo "could not read the CUDA version from nvidia-smi" >&2
    exit 1
fi
if [ "$AER" = 1 ] || [ "$CUDA_MAJOR" -lt 13 ]; then EXTRA=cuquantum-cu12; else EXTRA=cuquantum-cu13; fi
echo "driver supports CUDA $CUDA_MAJOR: installing .[dev,$EXTRA] into $VENV (Aer GPU: $AER)"

test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -c constraints.txt -e ".[dev,$EXTRA]"
if [ "$AER" = 1 ]; then
    AER_VERSION=$("$VENV/bin/python" -c "import importlib.metadata as m; print(m.version('qiskit-aer'))")
    "$VENV/bin/python" -m pip uninstall --quiet -y qiskit-aer
    "$VENV/bin/python" -m pip install --quiet "qiskit-aer-gpu==$AER_VERSION"
fi

"$VENV/bin/python" - <<'EOF'
from providers.cuquantum import cuquantum_status
from providers.gpu import cuda_devices
from qiskit_aer import AerSimulator

print("GPUs:", ", ".join(d.describe() for d in cuda_devices()) or "none")
print("Aer devices:", AerSimulator().available_devices())
print("cuStateVec:", cuquantum_status() or "ready")
EOF
echo "GPU tests: $VENV/bin/python -m pytest -m gpu; benchmark: $VENV/bin/python -m bench.gpu"
