# Sourced helper of the kind scripts: pinned versions, names and small utilities.
# shellcheck shell=bash
# shellcheck disable=SC2034  # the variables are used by the scripts that source this file

KIND_CLUSTER_NAME="${KIND_CLUSTER_NAME:-mlops}"
KUBE_CONTEXT="kind-${KIND_CLUSTER_NAME}"
# Argo CD, pinned: the install manifest of this release is applied server-side.
ARGOCD_VERSION="${ARGOCD_VERSION:-v3.5.1}"
ARGOCD_INSTALL_URL="https://raw.githubusercontent.com/argoproj/argo-cd/${ARGOCD_VERSION}/manifests/install.yaml"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

need() {
  local tool
  for tool in "$@"; do
    command -v "${tool}" &>/dev/null || die "${tool} is required (not on PATH)"
  done
}

kc() { kubectl --context "${KUBE_CONTEXT}" "$@"; }

cluster_exists() { kind get clusters 2>/dev/null | grep -qx "${KIND_CLUSTER_NAME}"; }

# The kind cluster's configuration (kept here rather than in a YAML file, which hack/validate
# would take for a Kubernetes manifest). Host ports listen on 127.0.0.1 only:
#   127.0.0.1:8080 -> Istio ingress gateway HTTP  (NodePort 30080; models: <model>.<env>.mlops.local)
#   127.0.0.1:8443 -> Istio ingress gateway HTTPS (NodePort 30443)
# The worker is the batch pool, labelled and tainted mlops.io/pool=batch: only workflow pods,
# which tolerate it (clusters/kind/workflow-templates/), run there.
KIND_NODE_IMAGE="${KIND_NODE_IMAGE:-kindest/node:v1.32.2}"
kind_config() {
  cat <<YAML
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
  - role: control-plane
    image: ${KIND_NODE_IMAGE}
    extraPortMappings:
      - containerPort: 30080
        hostPort: 8080
        listenAddress: 127.0.0.1
        protocol: TCP
      - containerPort: 30443
        hostPort: 8443
        listenAddress: 127.0.0.1
        protocol: TCP
  - role: worker
    image: ${KIND_NODE_IMAGE}
    labels:
      mlops.io/pool: batch
    kubeadmConfigPatches:
      - |
        kind: JoinConfiguration
        nodeRegistration:
          taints:
            - key: mlops.io/pool
              value: batch
              effect: NoSchedule
YAML
}
