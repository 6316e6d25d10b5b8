#!/usr/bin/env bash
# Create the development secrets of a kind cluster, never committed to Git.
#
# Usage: hack/create-dev-secrets.sh [--rotate] [-h|--help]
#
# Writes the source Secrets that the kind ClusterSecretStore "platform" reads
# (clusters/kind/secret-store/) into the namespace external-secrets; the External Secrets
# Operator turns them into the Secrets the platform mounts (infra/secrets/README.md):
#   mlflow-db               MLflow's PostgreSQL role (random password)
#   minio-root, mlops-s3    MinIO's administrator and the platform's access key (random)
#   model-api-keys-<env>    API-key hashes of each environment's model servers (the environments
#                           of infra/mlops_platform/environments.yaml); the keys themselves are
#                           printed once, here, and stored nowhere
#   model-replay-api-key-<env>  a second key, for an environment whose secrets
#                           (infra/secrets/models-<env>/) include the holdout-replay analysis key
#   promotion-bot-git       the promotion bot's Git token: $PROMOTION_BOT_GIT_TOKEN (and
#                           $PROMOTION_BOT_GIT_USERNAME; a token given replaces the stored one),
#                           or a placeholder that cannot push
#   grafana-admin           Grafana's admin password (random)
#   alertmanager-receivers  $ALERT_SLACK_WEBHOOK_URL and $ALERT_PAGER_WEBHOOK_URL, or a local
#                           black hole
# Idempotent: an existing Secret is kept (passwords already in use stay valid) unless --rotate.
# KIND_CLUSTER_NAME (default mlops) selects the cluster; needs kubectl, openssl and the mlops
# CLI (the project's .venv, created by hack/test.sh or hack/demo.sh).
set -o errexit -o nounset -o pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." &>/dev/null && pwd -P)"
cd "${REPO_ROOT}"
# shellcheck source=hack/lib/kind.sh
source "${REPO_ROOT}/hack/lib/kind.sh"

NAMESPACE=external-secrets
ROTATE=false

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${REPO_ROOT}/hack/create-dev-secrets.sh"; }

while (($#)); do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --rotate) ROTATE=true ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
  shift
done

need kubectl openssl
MLOPS="${REPO_ROOT}/.venv/bin/mlops"
[[ -x "${MLOPS}" ]] || MLOPS="$(command -v mlops || true)"
[[ -n "${MLOPS}" ]] || die "the mlops CLI is needed for API keys: run hack/test.sh (or hack/demo.sh) first"
# The Python beside the CLI reads the list of environments (the project's package).
PYTHON="$(dirname "${MLOPS}")/python"
[[ -x "${PYTHON}" ]] || PYTHON="$(command -v python3)"

WORK="$(mktemp -d)"
cleanup() { rm -rf "${WORK}"; }
trap cleanup EXIT

random() { openssl rand -hex "${1:-24}"; }

exists() { kc -n "${NAMESPACE}" get secret "$1" &>/dev/null; }

# put_secret NAME KEY=VALUE... : create or (with --rotate) replace a generic Secret.
# The values never reach a command line (visible to every local user in the process list): this
# function runs in the shell itself, writes each value to a file only the current user can read
# (printf is a builtin), and kubectl reads them with --from-file.
put_secret() {
  local name="$1"
  shift
  if exists "${name}" && [[ "${ROTATE}" != true ]]; then
    log "secret ${name} exists; kept (use --rotate to replace it)"
    return 1
  fi
  local args=() pair dir="${WORK}/secret-${name}"
  (umask 077 && mkdir -p "${dir}")
  for pair in "$@"; do
    (umask 077 && printf '%s' "${pair#*=}" >"${dir}/${pair%%=*}")
    args+=("--from-file=${pair%%=*}=${dir}/${pair%%=*}")
  done
  kc -n "${NAMESPACE}" create secret generic "${name}" "${args[@]}" --dry-run=client -o yaml |
    kc label --local -f - app.kubernetes.io/part-of=mlops mlops.io/dev-secret=true -o yaml |
    kc apply -f - >/dev/null
  rm -rf "${dir}"
  log "secret ${name} written"
}

# put_api_keys ENV : a new API key for the model servers of ENV; the hash goes into the Secret.
put_api_keys() {
  local env="$1" name="model-api-keys-$1" keys_file="${WORK}/api-keys-$1"
  if exists "${name}" && [[ "${ROTATE}" != true ]]; then
    log "secret ${name} exists; kept (use --rotate to issue a new key)"
    return 0
  fi
  : >"${keys_file}"
  echo "--- ${env} model servers"
  "${MLOPS}" keys create --append "${keys_file}" | sed -n '1p'
  if grep -qs "model-replay-api-key-${env}" "infra/secrets/models-${env}"/*.yaml; then
    # A second key, for the environment's analysis Job that replays holdout rows through the canary.
    local replay
    replay="$("${MLOPS}" keys create --append "${keys_file}" | sed -n '1s/.*: //p')"
    ROTATE=true put_secret "model-replay-api-key-${env}" "api-key=${replay}" || true
  fi
  put_secret "${name}" "api-keys=$(cat "${keys_file}")" || true
}

kc get namespace "${NAMESPACE}" &>/dev/null || kc create namespace "${NAMESPACE}"

put_secret mlflow-db username=mlflow "password=$(random)" || true
put_secret minio-root rootUser=admin "rootPassword=$(random)" || true
put_secret mlops-s3 "access-key=mlops-$(random 6)" "secret-key=$(random)" || true
put_secret grafana-admin user=admin "password=$(random 12)" || true
# A token given here (hack/kind-up.sh gives the in-cluster Gitea's) replaces the stored one.
bot_rotate="${ROTATE}"
[[ -z "${PROMOTION_BOT_GIT_TOKEN:-}" ]] || bot_rotate=true
ROTATE="${bot_rotate}" put_secret promotion-bot-git \
  "username=${PROMOTION_BOT_GIT_USERNAME:-mlops-promotion-bot}" \
  "token=${PROMOTION_BOT_GIT_TOKEN:-no-token-set}" || true
put_secret alertmanager-receivers \
  "slack-webhook-url=${ALERT_SLACK_WEBHOOK_URL:-http://127.0.0.1:9/slack}" \
  "pager-webhook-url=${ALERT_PAGER_WEBHOOK_URL:-http://127.0.0.1:9/pager}" || true
# The one list of environments (infra/mlops_platform/environments.yaml), in promotion order.
mapfile -t environments < <("${PYTHON}" -m mlops_platform.environments)
((${#environments[@]})) || die "no environments listed in infra/mlops_platform/environments.yaml"
for env in "${environments[@]}"; do
  put_api_keys "${env}"
done

# The rollout notifier's token exists once the workflow-templates Application made the
# ServiceAccount rollout-notifier (Kubernetes fills its token Secret); kind-up.sh runs this script
# again after the sync to copy it. It is stored as "Bearer <token>", what the webhook sends.
notifier_token="$(kc -n mlops get secret rollout-notifier-token -o jsonpath='{.data.token}' 2>/dev/null || true)"
if [[ -n "${notifier_token}" ]]; then
  ROTATE=true put_secret rollout-notifier-token "token=$(printf '%s' "${notifier_token}" | base64 -d)" || true
else
  log "no token of ServiceAccount mlops/rollout-notifier yet; run this script again after the sync"
fi

log "done; External Secrets copies them into the platform's namespaces within a minute"
