#!/usr/bin/env bash
# Benchmark: cold start (process start to the first successful prediction) of the model server,
# cached and with an empty model cache, side by side with `mlflow models serve` and a bare FastAPI
# app, each started several times in one run; prints min/median/max per server.
# Usage: hack/bench-coldstart.sh [--rounds N] [--before CHECKOUT] [--keep]
#   --before CHECKOUT  also measure the mlops_serving of another checkout (e.g. main), same run
# Needs: the dev virtualenv (.venv, or PYTHON=...) with full mlflow (tracking server and the peer).
set -o errexit -o nounset -o pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." &> /dev/null && pwd -P)"
cd "${REPO_ROOT}"

PYTHON="${PYTHON:-${REPO_ROOT}/.venv/bin/python}"
exec "${PYTHON}" tests/benchmarks/bench_coldstart.py "$@"
