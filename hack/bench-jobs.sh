#!/usr/bin/env bash
# Benchmark the fixed costs of the mlops jobs (a script, not a test); prints a table and JSON.
#
#   hack/bench-jobs.sh [--runs N] [--rows N] [--workdir DIR] [--baseline CHECKOUT]
#
# Cold runs of train (next to a hand-written reference script), batch-predict, drift,
# promote --dry-run and --help; with --baseline, another checkout's beside. See tests/benchmarks/bench_jobs.py.
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
exec "${VENV}/bin/python" tests/benchmarks/bench_jobs.py "$@"
