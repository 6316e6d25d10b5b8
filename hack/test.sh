#!/usr/bin/env bash
# Run the static checks (hack/verify-all.sh: ruff, mypy, shellcheck, manifests, promtool), then the
# test suite, creating or refreshing .venv first.
#
#   hack/test.sh [PYTEST ARGS...]     e.g. hack/test.sh -k train -x
#
# Naming test files or folders (hack/test.sh tests/serving -x), --collect-only, or MLOPS_VERIFY=0
# runs only pytest. Tests that need a service binary (PostgreSQL, SeaweedFS, Prometheus, ...) start
# it on loopback ports and skip with a reason when it is missing; MLOPS_REQUIRE_INTEGRATION=1 turns
# those skips into failures (CI sets it, see .ci/run).
set -o errexit -o nounset -o pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." &>/dev/null && pwd -P)"
cd "${REPO_ROOT}"
# shellcheck source=hack/lib/venv.sh
source "${REPO_ROOT}/hack/lib/venv.sh"

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit 0
fi

verify="${MLOPS_VERIFY:-1}"
for arg in "$@"; do
  case "${arg}" in
    --collect-only | --co | --version | --fixtures) verify=0 ;;
    *::*) verify=0 ;;
    -*) ;;
    *) if [[ -e "${arg}" ]]; then verify=0; fi ;;
  esac
done

ensure_venv dev
export PATH="${VENV}/bin:${PATH}"
if [[ "${verify}" != 0 ]]; then
  "${REPO_ROOT}/hack/verify-all.sh"
fi
exec "${VENV}/bin/python" -m pytest "$@"
