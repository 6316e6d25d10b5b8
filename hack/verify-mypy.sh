#!/usr/bin/env bash
# Type-check every import package of the repository (<component>/mlops_*) with mypy --strict
# (configuration in pyproject.toml).
#
#   hack/verify-mypy.sh
set -o errexit -o nounset -o pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." &>/dev/null && pwd -P)"
cd "${REPO_ROOT}"
# shellcheck source=hack/lib/verify.sh
source "${REPO_ROOT}/hack/lib/verify.sh"

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,5p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit 0
fi

packages=()
for init in */mlops_*/__init__.py; do
  packages+=("$(dirname "${init}")")
done
((${#packages[@]})) || { echo "error: no */mlops_*/ package found" >&2; exit 1; }

ensure_venv dev
exec "${VENV}/bin/python" -m mypy "${packages[@]}"
