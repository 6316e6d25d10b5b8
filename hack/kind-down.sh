#!/usr/bin/env bash
# Delete the local kind cluster created by hack/kind-up.sh, with everything in it.
#
# Usage: hack/kind-down.sh [-h|--help]      KIND_CLUSTER_NAME (default mlops) selects the cluster
#
# Idempotent: succeeds when the cluster does not exist.
set -o errexit -o nounset -o pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." &>/dev/null && pwd -P)"
cd "${REPO_ROOT}"
# shellcheck source=hack/lib/kind.sh
source "${REPO_ROOT}/hack/lib/kind.sh"

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${REPO_ROOT}/hack/kind-down.sh"; }

case "${1:-}" in
  -h | --help) usage; exit 0 ;;
  "") ;;
  *) usage >&2; die "unknown argument: $1" ;;
esac

need kind
if cluster_exists; then
  log "deleting kind cluster ${KIND_CLUSTER_NAME}"
  kind delete cluster --name "${KIND_CLUSTER_NAME}"
else
  log "kind cluster ${KIND_CLUSTER_NAME} does not exist; nothing to do"
fi
