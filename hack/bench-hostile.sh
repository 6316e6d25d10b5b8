#!/usr/bin/env bash
# Benchmark: the event-loop stall each hand-made hostile request causes on the model server, as a
# second client's 1-row predictions see it; prints one row per case and the worst stall.
# Usage: hack/bench-hostile.sh [--home DIR] [--source CHECKOUT] [--only SUBSTRING]
# Needs: the dev virtualenv (.venv, or PYTHON=...) with full mlflow (the embedded store).
set -o errexit -o nounset -o pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." &> /dev/null && pwd -P)"
cd "${REPO_ROOT}"

PYTHON="${PYTHON:-${REPO_ROOT}/.venv/bin/python}"
export PYTHONPATH="${REPO_ROOT}/infra:${REPO_ROOT}/drift:${REPO_ROOT}/workflows:${REPO_ROOT}/serving${PYTHONPATH:+:${PYTHONPATH}}"
exec "${PYTHON}" tests/benchmarks/bench_hostile.py "$@"
