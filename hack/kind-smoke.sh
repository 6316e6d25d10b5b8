#!/usr/bin/env bash
# The model lifecycle in the kind cluster, end to end, after hack/kind-up.sh.
#
# Usage: hack/kind-smoke.sh [-h|--help]      MODEL (default wine-classifier), STEP_TIMEOUT (default 1200 s)
#
# Steps, each waited for (a step that does not finish in STEP_TIMEOUT fails the script):
#   1. staging: the open promotion pull request of MODEL for staging in the in-cluster Gitea (the
#      train workflow of hack/kind-up.sh opened it; trains again when there is none), merged through
#      Gitea's API; Argo CD syncs it (refreshed), the staging canary runs with its analysis, and the
#      rollout-outcome workflow finalizes it (the `staging` alias moves to the version);
#   2. production: the train template's promote step (entrypoint promote, promote-to=production)
#      opens the production pull request for that version; merged; the production canary runs and
#      is finalized (the `production` alias moves);
#   3. a faulty version: MODEL trained again, its staging pull request merged, and its canary aborted
#      while it runs (what a failed analysis does); the rollout-outcome workflow must open the revert
#      pull request in Gitea;
#   4. prints the versions and aliases of MODEL (`mlops models show`, the local lifecycle's summary)
#      and the pull requests in Gitea.
# Needs kubectl, curl, git, openssl, the cluster of hack/kind-up.sh and the project's .venv.
set -o errexit -o nounset -o pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." &>/dev/null && pwd -P)"
cd "${REPO_ROOT}"
# shellcheck source=hack/lib/kind.sh
source "${REPO_ROOT}/hack/lib/kind.sh"
# shellcheck source=hack/lib/gitea.sh
source "${REPO_ROOT}/hack/lib/gitea.sh"

MODEL="${MODEL:-wine-classifier}"
STEP_TIMEOUT="${STEP_TIMEOUT:-1200}"
MLFLOW_LOCAL_PORT="${MLFLOW_LOCAL_PORT:-5000}"
MLOPS="${REPO_ROOT}/.venv/bin/mlops"
MLFLOW_PORT_FORWARD_PID=""

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${REPO_ROOT}/hack/kind-smoke.sh"; }

case "${1:-}" in
  -h | --help) usage; exit 0 ;;
  "") ;;
  *) usage >&2; die "unknown argument: $1" ;;
esac

need kubectl curl git openssl
[[ -x "${MLOPS}" ]] || die "the project's .venv is needed (mlops models show): run hack/test.sh --co -q first"
cluster_exists || die "no kind cluster ${KIND_CLUSTER_NAME}: run hack/kind-up.sh first"

cleanup() {
  gitea_stop
  [[ -z "${MLFLOW_PORT_FORWARD_PID}" ]] || kill "${MLFLOW_PORT_FORWARD_PID}" 2>/dev/null || true
}
trap cleanup EXIT

# wait_until DESCRIPTION COMMAND... : run COMMAND every 10 s until it succeeds or STEP_TIMEOUT passes.
wait_until() {
  local what="$1" deadline=$((SECONDS + STEP_TIMEOUT))
  shift
  log "waiting for ${what}"
  until "$@"; do
    ((SECONDS < deadline)) || die "timed out after ${STEP_TIMEOUT}s waiting for ${what}"
    sleep 10
  done
}

# The version an alias of MODEL points at in MLflow (empty when unset).
alias_version() {
  curl -fsS "http://127.0.0.1:${MLFLOW_LOCAL_PORT}/api/2.0/mlflow/registered-models/alias?name=${MODEL}&alias=$1" \
    2>/dev/null | sed -n 's/.*"version": *"\([0-9]*\)".*/\1/p'
}
alias_is() { [[ "$(alias_version "$1")" == "$2" ]]; }

# The number and head branch of the newest open pull request whose branch starts with PREFIX.
open_pull() {
  gitea_api GET "/repos/${GITEA_ORG}/${GITEA_REPO}/pulls?state=open&sort=newest&limit=50" |
    grep -o '"number":[0-9]*\|"ref":"'"$1"'[^"]*"' | grep -B1 '"ref"' | head -n 2 |
    sed 's/"number"://; s/"ref":"//; s/"$//' | paste -sd' '
}
has_open_pull() { [[ -n "$(open_pull "$1")" ]]; }

merge_pull() {
  log "merging pull request #$1 ($2) in Gitea"
  gitea_api POST "/repos/${GITEA_ORG}/${GITEA_REPO}/pulls/$1/merge" '{"Do": "merge"}' >/dev/null
  kc -n argocd annotate application root argocd.argoproj.io/refresh=hard --overwrite >/dev/null
  kc -n argocd annotate application "${MODEL}-$3" argocd.argoproj.io/refresh=hard --overwrite >/dev/null
}

# submit_train [PARAMETER=VALUE...] [--entrypoint NAME] : a train workflow of MODEL; waits for it.
submit_train() {
  local entrypoint="" name phase params="" pair
  local deadline=$((SECONDS + STEP_TIMEOUT))
  for pair in "$@"; do
    if [[ "${pair}" == --entrypoint=* ]]; then
      entrypoint="  entrypoint: ${pair#--entrypoint=}"
    else
      params+=$'\n'"      - name: ${pair%%=*}"$'\n'"        value: ${pair#*=}"
    fi
  done
  name="$(kc -n mlops create -o name -f - <<YAML
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  generateName: smoke-${MODEL}-
  namespace: mlops
spec:
  workflowTemplateRef:
    name: train
${entrypoint}
  arguments:
    parameters:
      - name: model
        value: ${MODEL}${params}
YAML
)"
  log "submitted ${name} $*"
  while :; do
    phase="$(kc -n mlops get "${name}" -o jsonpath='{.status.phase}' 2>/dev/null || true)"
    case "${phase}" in
      Succeeded) return 0 ;;
      Failed | Error) die "${name}: ${phase}; see: kubectl --context ${KUBE_CONTEXT} -n mlops get ${name} -o yaml" ;;
    esac
    ((SECONDS < deadline)) || die "${name} still ${phase:-pending} after ${STEP_TIMEOUT}s"
    sleep 10
  done
}

rollout_at() {
  local env="$1" version="$2" ns="models-$1" got phase
  got="$(kc -n "${ns}" get rollout "${MODEL}-model-server" \
    -o jsonpath='{.metadata.annotations.mlops\.io/model-version}' 2>/dev/null || true)"
  phase="$(kc -n "${ns}" get rollout "${MODEL}-model-server" -o jsonpath='{.status.phase}' 2>/dev/null || true)"
  [[ "${got}" == "${version}" && "${phase}" == Healthy ]] || { log "${env}: v${got:-none} ${phase:-unknown}"; return 1; }
}

rollout_progressing() {
  [[ "$(kc -n "models-$1" get rollout "${MODEL}-model-server" -o jsonpath='{.status.phase}' 2>/dev/null)" == Progressing ]]
}

# Promote the version of the open pull request into ENV: merge, canary, finalize.
land() {
  local env="$1" pull number branch version
  pull="$(open_pull "promote/${MODEL}/${env}/")"
  number="${pull%% *}"
  branch="${pull#* }"
  version="${branch##*/v}"
  merge_pull "${number}" "${branch}" "${env}"
  wait_until "the ${env} canary of v${version} to complete" rollout_at "${env}" "${version}"
  wait_until "the ${env} alias to move to v${version} (rollout-outcome finalize)" alias_is "${env}" "${version}"
  LANDED="${version}"
}

gitea_start
kc -n mlops port-forward svc/mlflow "${MLFLOW_LOCAL_PORT}:5000" >/dev/null 2>&1 &
MLFLOW_PORT_FORWARD_PID=$!
wait_until "MLflow on 127.0.0.1:${MLFLOW_LOCAL_PORT}" curl -fsS -o /dev/null "http://127.0.0.1:${MLFLOW_LOCAL_PORT}/health"

# 1. staging
has_open_pull "promote/${MODEL}/staging/" || submit_train
wait_until "the staging pull request of ${MODEL}" has_open_pull "promote/${MODEL}/staging/"
LANDED=""
land staging
staging_version="${LANDED}"

# 2. production: the version staging finalized
submit_train promote-to=production --entrypoint=promote
wait_until "the production pull request of ${MODEL}" has_open_pull "promote/${MODEL}/production/"
land production

# 3. a faulty version: its staging canary aborted, its revert pull request opened
submit_train
wait_until "the staging pull request of the next version" has_open_pull "promote/${MODEL}/staging/"
pull="$(open_pull "promote/${MODEL}/staging/")"
merge_pull "${pull%% *}" "${pull#* }" staging
wait_until "the staging canary of ${pull##*/v} to start" rollout_progressing staging
log "aborting the staging canary of v${pull##*/v} (what a failed analysis does)"
kc -n models-staging patch rollout "${MODEL}-model-server" --subresource=status --type=merge \
  -p '{"status": {"abort": true}}' >/dev/null
wait_until "the revert pull request of staging" has_open_pull "rollback/${MODEL}/staging/"

# 4. summary
echo
MLFLOW_TRACKING_URI="http://127.0.0.1:${MLFLOW_LOCAL_PORT}" "${MLOPS}" models show "${MODEL}"
echo
echo "staging finalized v${staging_version}; production finalized v${LANDED}; revert pull request:"
gitea_api GET "/repos/${GITEA_ORG}/${GITEA_REPO}/pulls?state=open&limit=50" |
  grep -o '"html_url":"[^"]*/pulls/[0-9]*"' | cut -d'"' -f4 | sort -u
