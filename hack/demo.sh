#!/usr/bin/env bash
# The main job on the embedded default (no cluster): everything lands in ./.mlops/.
#
#   hack/demo.sh
#
# Trains wine-classifier and breast-cancer-classifier (tracked in MLflow, registered, gated),
# trains wine-classifier again with other hyperparameters, and prints the registry.
# Creates or refreshes .venv first. Run it again and the versions go on counting.
set -o errexit -o nounset -o pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." &>/dev/null && pwd -P)"
cd "${REPO_ROOT}"
# shellcheck source=hack/lib/venv.sh
source "${REPO_ROOT}/hack/lib/venv.sh"

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit 0
fi

ensure_venv all
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

printf '\nMLflow UI:  %s/bin/mlflow ui --backend-store-uri sqlite:///%s/.mlops/mlflow.db\n' "${VENV}" "${REPO_ROOT}"
