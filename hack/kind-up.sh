#!/usr/bin/env bash
# Create the local kind cluster and let Argo CD install the whole platform from Git.
#
# Usage: hack/kind-up.sh [--cluster-only] [-h|--help]
#
# Steps (each idempotent, so re-running continues where it stopped):
#   1. kind cluster "${KIND_CLUSTER_NAME:-mlops}" with the ports of kind_config in hack/lib/kind.sh
#      (127.0.0.1:8080 HTTP and 127.0.0.1:8443 HTTPS to the Istio ingress gateway);
#   2. Argo CD ${ARGOCD_VERSION:-v3.5.1} (pinned install manifest) and its settings (infra/argocd/);
#   3. the development secrets (hack/create-dev-secrets.sh);
#   4. the root Application of clusters/kind/ (the app-of-apps), then waits for every
#      Application to be synced and healthy (WAIT_TIMEOUT, default 1800 s);
#   5. prints every UI, how to reach it, the admin password commands and a curl through the
#      Istio ingress.
# Argo CD syncs from the repository in clusters/kind/kustomization.yaml (repoURL, targetRevision):
# push your fork and set them there first. Needs docker, kind and kubectl.
set -o errexit -o nounset -o pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." &>/dev/null && pwd -P)"
cd "${REPO_ROOT}"
# shellcheck source=hack/lib/kind.sh
source "${REPO_ROOT}/hack/lib/kind.sh"

WAIT_TIMEOUT="${WAIT_TIMEOUT:-1800}"
CLUSTER_ONLY=false

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${REPO_ROOT}/hack/kind-up.sh"; }

while (($#)); do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --cluster-only) CLUSTER_ONLY=true ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
  shift
done

need docker kind kubectl

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
  kc -n argocd rollout restart deployment argocd-repo-server >/dev/null
  kc -n argocd rollout status deployment argocd-server --timeout=300s
  kc -n argocd rollout status deployment argocd-repo-server --timeout=300s
  kc -n argocd rollout status statefulset argocd-application-controller --timeout=300s
}

apply_root() {
  log "applying the projects and the root Application of clusters/kind"
  kc kustomize clusters/kind | kc apply -l mlops.io/bootstrap=true -f -
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

create_cluster
if [[ "${CLUSTER_ONLY}" == true ]]; then
  log "cluster only: done"
  exit 0
fi
install_argocd
hack/create-dev-secrets.sh
apply_root
wait_for_sync
# Now that mlops/rollout-notifier exists: its token for the Argo Rollouts notification engine.
hack/create-dev-secrets.sh
print_access
