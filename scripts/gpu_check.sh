#!/usr/bin/env bash
# The GPU check in one go (versions, pytest -m cuda -x, the GPU benchmark report, a summary):
#   scripts/gpu_check.sh OUT [--quick] [--deps DIR] [--budget 480]   on an NVIDIA GPU machine
#   scripts/gpu_check.sh OUT --fake --quick                          rehearsal on the CPU
# Details: scripts/gpu_check.py. Needs only Python (the checkout is put on PYTHONPATH).
set -euo pipefail
PYTHON="${PYTHON:-$(command -v python3 || command -v python || true)}"
if [ -z "$PYTHON" ]; then
    echo "gpu_check: FAIL no python3 on PATH" >&2
    exit 2
fi
exec "$PYTHON" "$(dirname "$0")/gpu_check.py" "$@"
