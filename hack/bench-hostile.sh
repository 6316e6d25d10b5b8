#!/usr/bin/env bash
# Benchmark: the event-loop stall each hand-made hostile request causes on the model server, as a
# second client's 1-row predictions see it; with --baseline (a git ref such as main, or a checkout)
# the baseline's server side by side in the same run. One row per case, then the worst stall of each.
# Usage: hack/bench-hostile.sh [--home DIR] [--baseline REF_OR_DIR] [--repeat N] [--only SUBSTRING]...
# Needs: the dev virtualenv (.venv, or PYTHON=...) with full mlflow (the embedded store).
set -o errexit -o nounset -o pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." &> /dev/null && pwd -P)"
cd "${REPO_ROOT}"

PYTHON="${PYTHON:-${REPO_ROOT}/.venv/bin/python}"
export PYTHONPATH="${REPO_ROOT}/infra:${REPO_ROOT}/drift:${REPO_ROOT}/workflows:${REPO_ROOT}/serving${PYTHONPATH:+:${PYTHONPATH}}"
exec "${PYTHON}" tests/benchmarks/bench_hostile.py "$@"
