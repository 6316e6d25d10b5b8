#!/usr/bin/env bash
# Create the local kind cluster and let Argo CD install the whole platform from the local clone.
#
# Usage: hack/kind-up.sh [--cluster-only] [--skip-build] [--no-train] [-h|--help]
#
# Steps (each idempotent, so re-running continues where it stopped):
#   1. the footprint: the CPU and memory requests of everything the cluster will run
#      (python -m mlops_gitops.manifests.footprint), checked against what Docker can give;
#      refuses to start below it;
#   2. kind cluster "${KIND_CLUSTER_NAME:-mlops}" with the ports of kind_config in hack/lib/kind.sh
#      (127.0.0.1:8080 HTTP and 127.0.0.1:8443 HTTPS to the Istio ingress gateway);
#   3. the project's three images built from the working tree (hack/build-images.sh, docker) and
#      loaded into kind (kind load docker-image) under the names the kind overlay pins;
#   4. Argo CD ${ARGOCD_VERSION:-v3.5.1} (pinned install manifest), its settings (infra/argocd/) and
#      its requests and limits (clusters/kind/argocd-resources.yaml; the manifest sets none);
#   5. the in-cluster Git server (clusters/kind/gitea/): applied with the projects and the root
#      Application, then seeded by pushing this clone's HEAD to mlops/mlops-platform, with a bot
#      user whose token the promotion bot uses;
#   6. the development secrets (hack/create-dev-secrets.sh), then waits for every Application to
#      be Synced and Healthy (WAIT_TIMEOUT, default 1800 s; environments with nothing pinned run no
#      pods and are healthy);
#   7. a first model: submits the train workflow for every model (workflows/models/) and waits
#      for them (TRAIN_TIMEOUT, default 1800 s); each opens its promotion pull request in Gitea;
#   8. prints every UI, how to reach it, the pull requests to merge next, and a curl through the
#      Istio ingress.
# Argo CD syncs from Gitea inside the cluster: commit before running this script (uncommitted
# changes are not pushed). Needs docker, kind, kubectl, git, curl, openssl and the project's .venv
# (hack/test.sh creates it). A shared cluster syncs from a fork instead (README).
set -o errexit -o nounset -o pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." &>/dev/null && pwd -P)"
cd "${REPO_ROOT}"
# shellcheck source=hack/lib/kind.sh
source "${REPO_ROOT}/hack/lib/kind.sh"
# shellcheck source=hack/lib/gitea.sh
source "${REPO_ROOT}/hack/lib/gitea.sh"

WAIT_TIMEOUT="${WAIT_TIMEOUT:-1800}"
TRAIN_TIMEOUT="${TRAIN_TIMEOUT:-1800}"
CLUSTER_ONLY=false
BUILD=true
TRAIN=true
PYTHON="${REPO_ROOT}/.venv/bin/python"

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${REPO_ROOT}/hack/kind-up.sh"; }

while (($#)); do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --cluster-only) CLUSTER_ONLY=true ;;
    --skip-build) BUILD=false ;;
    --no-train) TRAIN=false ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
  shift
done

need docker kind kubectl git curl openssl
[[ -x "${PYTHON}" ]] || die "the project's .venv is needed (footprint, API keys): run hack/test.sh --co -q first"
trap gitea_stop EXIT

# 1. What the cluster asks for, against what Docker gives (all nodes share the Docker VM).
check_footprint() {
  local ncpu memory
  read -r ncpu memory < <(docker info --format '{{.NCPU}} {{.MemTotal}}')
  log "Docker gives ${ncpu} CPUs and $((memory / 1024 / 1024)) MiB; the platform asks for:"
  "${PYTHON}" -m mlops_gitops.manifests.footprint --root "${REPO_ROOT}" --cluster kind --nodes 2 \
    --capacity-cpus "${ncpu}" --capacity-memory "${memory}" ||
    die "not enough CPU or memory for the platform (above); nothing was created"
}

# 3. The images Argo CD deploys, exactly as built from this tree, loaded into every node.
build_and_load_images() {
  CONTAINER_ENGINE=docker hack/build-images.sh
  local image
  while read -r image _; do
    kind load docker-image --name "${KIND_CLUSTER_NAME}" "${image}"
  done < <(hack/build-images.sh --list)
}

create_cluster() {
  if cluster_exists; then
    log "kind cluster ${KIND_CLUSTER_NAME} exists"
  else
    log "creating kind cluster ${KIND_CLUSTER_NAME}"
    kind_config | kind create cluster --name "${KIND_CLUSTER_NAME}" --config - --wait 120s
  fi
}

install_argocd() {
  log "installing Argo CD ${ARGOCD_VERSION}"
  kc apply -f infra/namespaces/namespaces.yaml
  # Server-side apply: the Argo CD CRDs are too large for client-side apply's annotation.
  kc apply --server-side --force-conflicts -n argocd -f "${ARGOCD_INSTALL_URL}"
  kc apply -k infra/argocd
  # The install manifest sizes nothing: the requests and limits the footprint counted.
  local workload requests limits
  while read -r workload requests limits; do
    kc -n argocd set resources "${workload}" "${requests}" "${limits}" >/dev/null
  done < <("${PYTHON}" -m mlops_gitops.manifests.upstream_sizes clusters/kind/argocd-resources.yaml)
  kc -n argocd rollout restart deployment argocd-repo-server >/dev/null
  kc -n argocd rollout status deployment argocd-server --timeout=300s
  kc -n argocd rollout status deployment argocd-repo-server --timeout=300s
  kc -n argocd rollout status statefulset argocd-application-controller --timeout=300s
}

apply_root() {
  log "applying the projects, the Gitea Application and the root Application of clusters/kind"
  kc kustomize clusters/kind | kc apply -l mlops.io/bootstrap=true -f -
}

# 5. Gitea up, the repository seeded from this clone, the bot's token handed to the secrets.
seed_gitea() {
  gitea_admin_secret
  log "waiting for Gitea (Argo CD installs it from its chart)"
  gitea_start
  gitea_seed_repository
  gitea_push_clone
  PROMOTION_BOT_GIT_USERNAME="${GITEA_BOT}"
  PROMOTION_BOT_GIT_TOKEN="$(gitea_bot_token)"
  [[ -n "${PROMOTION_BOT_GIT_TOKEN}" ]] || die "no token for ${GITEA_BOT}"
  export PROMOTION_BOT_GIT_USERNAME PROMOTION_BOT_GIT_TOKEN
  # Argo CD retries with a backoff; have it read the freshly seeded repository now.
  kc -n argocd annotate application root argocd.argoproj.io/refresh=hard --overwrite >/dev/null
}

wait_for_sync() {
  log "waiting up to ${WAIT_TIMEOUT}s for every Application to be Synced and Healthy"
  local deadline=$((SECONDS + WAIT_TIMEOUT)) pending
  while :; do
    pending="$(kc -n argocd get applications.argoproj.io \
      -o jsonpath='{range .items[*]}{.metadata.name}{" "}{.status.sync.status}{" "}{.status.health.status}{"\n"}{end}' |
      awk '$2 != "Synced" || $3 != "Healthy"')" || pending="(cannot list Applications yet)"
    if [[ -z "${pending}" ]] && kc -n argocd get application root &>/dev/null; then
      log "all Applications are Synced and Healthy"
      return 0
    fi
    if ((SECONDS >= deadline)); then
      printf '%s\n' "${pending}" >&2
      die "timed out; see the Argo CD UI (below) for what is still progressing"
    fi
    sleep 15
  done
}

# 7. A first version of every model: the train workflow (train, gate, promotion pull request).
train_models() {
  local model name phase deadline
  local -a names=()
  for model in workflows/models/*.yaml; do
    model="$(basename "${model}" .yaml)"
    name="$(kc -n mlops create -o name -f - <<YAML
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  generateName: train-${model}-
  namespace: mlops
spec:
  workflowTemplateRef:
    name: train
  arguments:
    parameters:
      - name: model
        value: ${model}
YAML
)"
    log "submitted ${name} (${model})"
    names+=("${name#*/}")
  done
  deadline=$((SECONDS + TRAIN_TIMEOUT))
  for name in "${names[@]}"; do
    while :; do
      phase="$(kc -n mlops get workflow "${name}" -o jsonpath='{.status.phase}' 2>/dev/null || true)"
      case "${phase}" in
        Succeeded) log "${name}: Succeeded"; break ;;
        Failed | Error) die "${name}: ${phase}; see: kubectl --context ${KUBE_CONTEXT} -n mlops get workflow ${name} -o yaml" ;;
      esac
      ((SECONDS < deadline)) || die "${name} still ${phase:-pending} after ${TRAIN_TIMEOUT}s"
      sleep 10
    done
  done
}

print_next_step() {
  local pulls none="  (none open: see the logs of the train workflows)"
  pulls="$(gitea_api GET "/repos/${GITEA_ORG}/${GITEA_REPO}/pulls?state=open&limit=20" |
    grep -o '"html_url":"[^"]*/pulls/[0-9]*"' | cut -d'"' -f4 | sort -u)" || true
  cat <<TEXT

Next step: the promotion pull requests the training opened in the in-cluster Gitea, one per model
(open them while this port-forward runs; Gitea's admin is in the Secret gitea/gitea-admin):

  kubectl --context ${KUBE_CONTEXT} -n gitea port-forward svc/gitea-http 3000:3000
${pulls:-${none}}

Merging one pins the version in staging: Argo CD syncs it and the staging canary runs its analysis.
hack/kind-smoke.sh runs the whole lifecycle (staging, production, a faulty version and its revert).
TEXT
}

print_access() {
  cat <<TEXT

The platform on kind ${KIND_CLUSTER_NAME} (context ${KUBE_CONTEXT}). Every UI is reached through
kubectl port-forward, which listens on 127.0.0.1 only:

  Argo CD          kubectl --context ${KUBE_CONTEXT} -n argocd port-forward svc/argocd-server 8081:443
                   https://127.0.0.1:8081   user admin, password:
                   kubectl --context ${KUBE_CONTEXT} -n argocd get secret argocd-initial-admin-secret -o jsonpath='{.data.password}' | base64 -d
  Argo Rollouts    kubectl --context ${KUBE_CONTEXT} -n argo-rollouts port-forward svc/argo-rollouts-dashboard 3100:3100
                   http://127.0.0.1:3100/rollouts/
  Argo Workflows   kubectl --context ${KUBE_CONTEXT} -n argo port-forward svc/argo-workflows-server 2746:2746
                   http://127.0.0.1:2746   token (paste "Bearer <token>" in the UI, or export ARGO_TOKEN):
                   kubectl --context ${KUBE_CONTEXT} -n mlops create token mlops-workflow
  Grafana          kubectl --context ${KUBE_CONTEXT} -n monitoring port-forward svc/kube-prometheus-stack-grafana 3000:80
                   http://127.0.0.1:3000   user admin, password:
                   kubectl --context ${KUBE_CONTEXT} -n monitoring get secret grafana-admin -o jsonpath='{.data.admin-password}' | base64 -d
  Prometheus       kubectl --context ${KUBE_CONTEXT} -n monitoring port-forward svc/kube-prometheus-stack-prometheus 9090:9090
                   http://127.0.0.1:9090
  Alertmanager     kubectl --context ${KUBE_CONTEXT} -n monitoring port-forward svc/kube-prometheus-stack-alertmanager 9093:9093
                   http://127.0.0.1:9093
  MLflow           kubectl --context ${KUBE_CONTEXT} -n mlops port-forward svc/mlflow 5000:5000
                   http://127.0.0.1:5000
  MinIO console    kubectl --context ${KUBE_CONTEXT} -n mlops port-forward svc/minio-console 9001:9001
                   http://127.0.0.1:9001   user and password:
                   kubectl --context ${KUBE_CONTEXT} -n mlops get secret minio-root -o jsonpath='{.data.rootPassword}' | base64 -d

Model servers through the Istio ingress gateway (127.0.0.1:8080 on this machine):

  curl -s -H 'Host: wine-classifier.staging.mlops.local' \\
       -H "Authorization: Bearer \${MLOPS_API_KEY}" -H 'Content-Type: application/json' \\
       -d '{"features": [[13.2, 2.77, 2.51, 18.5, 96.6, 1.04, 2.55, 0.57, 1.47, 6.2, 1.05, 3.33, 820]]}' \\
       http://127.0.0.1:8080/predict

  (the staging API key was printed once by hack/create-dev-secrets.sh)
TEXT
}

check_footprint
create_cluster
if [[ "${CLUSTER_ONLY}" == true ]]; then
  log "cluster only: done"
  exit 0
fi
if [[ "${BUILD}" == true ]]; then
  build_and_load_images
fi
install_argocd
apply_root
seed_gitea
hack/create-dev-secrets.sh
wait_for_sync
# Now that mlops/rollout-notifier exists: its token for the Argo Rollouts notification engine.
hack/create-dev-secrets.sh
if [[ "${TRAIN}" == true ]]; then
  train_models
fi
print_access
print_next_step
