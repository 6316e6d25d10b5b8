#!/usr/bin/env bash
# The jobs on the embedded default (no service, no cluster): what hack/demo.sh runs when the
# binaries of the whole lifecycle (kubectl, Prometheus, ...) are missing. Everything lands in ./.mlops/.
#
#   hack/lib/demo-embedded.sh
#
# Trains wine-classifier and breast-cancer-classifier (tracked in MLflow, registered, gated), trains
# wine-classifier again with other hyperparameters, prints the registry, serves both models and sends
# them traffic (the server logs sampled predictions), scores a file with batch-predict, and checks
# drift on the prediction log and on a shifted file. Run it again and the versions go on counting.
set -o errexit -o nounset -o pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." &>/dev/null && pwd -P)"
cd "${REPO_ROOT}"
# shellcheck source=hack/lib/venv.sh
source "${REPO_ROOT}/hack/lib/venv.sh"

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit 0
fi

ensure_venv local
mlops() { "${VENV}/bin/mlops" "$@"; }
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "settings (embedded default)"
mlops config

step "train wine-classifier (RandomForest, 100 trees)"
mlops train --config workflows/models/wine-classifier.yaml

step "train breast-cancer-classifier"
mlops train --config workflows/models/breast-cancer-classifier.yaml

step "train wine-classifier again: 300 shallower trees"
mlops train --config workflows/models/wine-classifier.yaml \
  --set estimator.params.n_estimators=300 --set estimator.params.max_depth=4

step "the registry"
mlops models list
echo
mlops models show wine-classifier

DEMO_DATA="${REPO_ROOT}/.mlops/demo"
PYTHON="${VENV}/bin/python"
"${PYTHON}" hack/lib/demo_traffic.py data "${DEMO_DATA}" >/dev/null

step "serve both models (candidate aliases) and send traffic"
PORT="$("${PYTHON}" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
MLOPS_SERVING_LOG_FORMAT=text "${VENV}/bin/mlops" serve --port "${PORT}" \
  --model wine-classifier@candidate --model breast-cancer-classifier@candidate &>"${REPO_ROOT}/.mlops/demo/server.log" &
SERVER_PID=$!
trap 'kill "${SERVER_PID}" 2>/dev/null || true' EXIT
"${PYTHON}" hack/lib/demo_traffic.py traffic "http://127.0.0.1:${PORT}" 800
kill -TERM "${SERVER_PID}"   # graceful: drains requests, flushes the prediction log
wait "${SERVER_PID}" || true
trap - EXIT
echo "server log: .mlops/demo/server.log; prediction log: .mlops/store/predictions/"

step "batch inference: 2000 rows, keeping the id column"
mlops batch-predict wine-classifier --alias candidate --input "${DEMO_DATA}/wine-fresh.csv" \
  --output "${REPO_ROOT}/.mlops/store/batch/wine-classifier" --id-column id --overwrite

drift() {
  local code=0
  mlops drift wine-classifier --alias candidate "$@" || code=$?
  case "${code}" in
    0) echo "=> exit 0: no drift" ;;
    10) echo "=> exit 10: drift detected (a workflow would start retraining)" ;;
    11) echo "=> exit 11: insufficient data" ;;
    *) echo "=> exit ${code}: error" >&2; return "${code}" ;;
  esac
}

step "drift: the prediction log of the last hour"
drift --last 1h

step "drift: a file with alcohol, proline and color_intensity scaled by 1.5"
drift --input "${DEMO_DATA}/wine-shifted.csv"

printf '\nMLflow UI:  %s/bin/mlflow ui --backend-store-uri sqlite:///%s/.mlops/mlflow.db\n' "${VENV}" "${REPO_ROOT}"
