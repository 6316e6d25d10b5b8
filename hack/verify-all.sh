#!/usr/bin/env bash
# Run every static check (hack/verify-*.sh) and report each; exits non-zero when one failed.
# A check whose tool is missing is reported as skipped (a failure under MLOPS_REQUIRE_INTEGRATION=1).
#
#   hack/verify-all.sh [NAME...]     e.g. hack/verify-all.sh ruff mypy (default: every check)
set -o errexit -o nounset -o pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." &>/dev/null && pwd -P)"
cd "${REPO_ROOT}"

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,5p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  for check in hack/verify-*.sh; do
    [[ "${check}" == hack/verify-all.sh ]] || echo "  $(basename "${check}" .sh | sed 's/^verify-//')"
  done
  exit 0
fi

if (($#)); then
  checks=()
  for name in "$@"; do
    [[ -f "hack/verify-${name}.sh" ]] || { echo "error: no check hack/verify-${name}.sh" >&2; exit 2; }
    checks+=("hack/verify-${name}.sh")
  done
else
  checks=()
  for check in hack/verify-*.sh; do
    [[ "${check}" == hack/verify-all.sh ]] || checks+=("${check}")
  done
fi

failed=()
skipped=()
for check in "${checks[@]}"; do
  echo "==> ${check}" >&2
  start=${SECONDS}
  status=0
  bash "${check}" || status=$?
  case "${status}" in
    0) echo "    ok ($((SECONDS - start)) s)" >&2 ;;
    3) skipped+=("${check}") ;;
    *) failed+=("${check}"); echo "    FAILED (exit ${status})" >&2 ;;
  esac
done

((${#skipped[@]} == 0)) || echo "skipped: ${skipped[*]}" >&2
if ((${#failed[@]})); then
  echo "verify: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "verify: ${#checks[@]} checks, ${#skipped[@]} skipped: OK" >&2
