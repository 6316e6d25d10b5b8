#!/usr/bin/env bash
# Run the whole test suite (lint and type checks included), creating or refreshing .venv first.
#
#   hack/test.sh [PYTEST ARGS...]     e.g. hack/test.sh -k train -x
#
# Tests that need a service binary (PostgreSQL, SeaweedFS, Prometheus, ...) start it on loopback
# ports and skip with a reason when it is missing; MLOPS_REQUIRE_INTEGRATION=1 turns those skips
# into failures (CI sets it, see .ci/run).
set -o errexit -o nounset -o pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." &>/dev/null && pwd -P)"
cd "${REPO_ROOT}"
# shellcheck source=hack/lib/venv.sh
source "${REPO_ROOT}/hack/lib/venv.sh"

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit 0
fi

ensure_venv dev
export PATH="${VENV}/bin:${PATH}"
exec "${VENV}/bin/python" -m pytest "$@"
