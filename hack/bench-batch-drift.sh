#!/usr/bin/env bash
# Benchmark batch inference and drift detection on 1M rows (a script, not a test); prints JSON.
#
#   hack/bench-batch-drift.sh [--rows N] [--workdir DIR]
#
# Targets: batch-predict at least 80% of raw in-process model.predict rows/s; drift over
# 1M rows x 13 features under 2 s. See tests/benchmarks/bench_batch_drift.py.
set -o errexit -o nounset -o pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." &>/dev/null && pwd -P)"
cd "${REPO_ROOT}"
# shellcheck source=hack/lib/venv.sh
source "${REPO_ROOT}/hack/lib/venv.sh"

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,7p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit 0
fi

ensure_venv dev
exec "${VENV}/bin/python" tests/benchmarks/bench_batch_drift.py "$@"
