#!/usr/bin/env bash
# Every Kubernetes manifest of the repository validates: hack/validate (rendering, strict schemas,
# cross-references and the repository's policies; see that script for its environment).
#
#   hack/verify-manifests.sh
set -o errexit -o nounset -o pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." &>/dev/null && pwd -P)"
cd "${REPO_ROOT}"
# shellcheck source=hack/lib/verify.sh
source "${REPO_ROOT}/hack/lib/verify.sh"

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,5p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit 0
fi

require_tool kubectl >/dev/null
ensure_venv dev
PYTHON="${VENV}/bin/python" exec "${REPO_ROOT}/hack/validate"
