#!/usr/bin/env bash
# Benchmark the model server against `mlflow models serve` on the same model version (one run,
# both servers pinned to one core, wrk to another). Prints a Markdown table and the issue's targets.
# Usage: hack/bench-serving.sh [--duration SECONDS] [--server-core N] [--client-core N] [--keep]
# Needs: the dev virtualenv (.venv, or PYTHON=...), wrk and taskset (apt-get install wrk util-linux).
set -o errexit -o nounset -o pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." &> /dev/null && pwd -P)"
cd "${REPO_ROOT}"

PYTHON="${PYTHON:-${REPO_ROOT}/.venv/bin/python}"
for tool in wrk taskset; do
  if ! command -v "${tool}" > /dev/null; then
    echo "error: ${tool} is not installed (Debian: apt-get install wrk util-linux)" >&2
    exit 2
  fi
done
if [[ "$(nproc)" -lt 2 ]]; then
  echo "warning: fewer than 2 CPUs; server and load generator will share a core" >&2
fi

exec "${PYTHON}" tests/benchmarks/bench_serving.py "$@"
