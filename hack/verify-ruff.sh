#!/usr/bin/env bash
# Lint every Python file of the repository with ruff (rules in pyproject.toml).
#
#   hack/verify-ruff.sh [RUFF CHECK ARGS...]     e.g. hack/verify-ruff.sh --fix
set -o errexit -o nounset -o pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." &>/dev/null && pwd -P)"
cd "${REPO_ROOT}"
# shellcheck source=hack/lib/verify.sh
source "${REPO_ROOT}/hack/lib/verify.sh"

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,4p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit 0
fi

ensure_venv dev
exec "${VENV}/bin/python" -m ruff check . "$@"
