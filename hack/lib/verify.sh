#!/usr/bin/env bash
# Sourced helper of the hack/verify-*.sh scripts: the venv, and a missing tool.
#
#   require_tool NAME   # prints the tool's path; a missing tool skips the check with a reason,
#                       # or fails it under MLOPS_REQUIRE_INTEGRATION=1 (CI, see .ci/run)

REPO_ROOT="${REPO_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." &>/dev/null && pwd -P)}"
# shellcheck source=hack/lib/venv.sh
source "${REPO_ROOT}/hack/lib/venv.sh"

# Exit status of a check that did not run (a missing tool); verify-all.sh reports it as skipped.
VERIFY_SKIPPED=3

require_tool() {
  local name="$1" path
  if path="$(command -v "${name}")"; then
    echo "${path}"
    return 0
  fi
  if [[ "${MLOPS_REQUIRE_INTEGRATION:-}" == 1 ]]; then
    echo "error: ${name} is not installed (MLOPS_REQUIRE_INTEGRATION=1)" >&2
    exit 1
  fi
  echo "skipped: ${name} is not installed" >&2
  exit "${VERIFY_SKIPPED}"
}
