#!/usr/bin/env bash
# Every shell script of the repository parses (bash -n) and passes shellcheck: hack/**/*.sh,
# hack/validate and .ci/run. Without shellcheck only the parse runs, and the check says it skipped
# (fails under MLOPS_REQUIRE_INTEGRATION=1).
#
#   hack/verify-shellcheck.sh
set -o errexit -o nounset -o pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." &>/dev/null && pwd -P)"
cd "${REPO_ROOT}"
# shellcheck source=hack/lib/verify.sh
source "${REPO_ROOT}/hack/lib/verify.sh"

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,6p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit 0
fi

mapfile -t scripts < <(find hack -name '*.sh' | sort)
scripts+=(hack/validate .ci/run)
((${#scripts[@]})) || { echo "error: no shell script found" >&2; exit 1; }

failed=0
for script in "${scripts[@]}"; do
  bash -n "${script}" || { echo "${script}: does not parse" >&2; failed=1; }
done
((failed == 0)) || exit 1

shellcheck="$(require_tool shellcheck)"
"${shellcheck}" -x "${scripts[@]}"
