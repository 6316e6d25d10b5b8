#!/usr/bin/env bash
# Sourced helper: create or refresh the project's virtual environment in .venv.
#
#   ensure_venv [EXTRAS]   # EXTRAS defaults to "dev" (everything, plus test and lint tools)
#
# The venv is rebuilt when it is missing or broken, and `pip install` runs again only when
# pyproject.toml or the requested extras changed since the last install (a stamp file records it).
# Needs Python 3.11 or newer: $PYTHON, else the first of python3.13 python3.12 python3.11 python3.

REPO_ROOT="${REPO_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." &>/dev/null && pwd -P)}"
VENV="${VENV:-${REPO_ROOT}/.venv}"
# Nothing here phones home (MLflow 3 sends usage telemetry unless told not to).
export MLFLOW_DISABLE_TELEMETRY="${MLFLOW_DISABLE_TELEMETRY:-true}"

find_python() {
  local candidate
  for candidate in ${PYTHON:-} python3.13 python3.12 python3.11 python3; do
    if command -v "${candidate}" &>/dev/null &&
      "${candidate}" -c 'import sys; sys.exit(sys.version_info < (3, 11))' &>/dev/null; then
      command -v "${candidate}"
      return 0
    fi
  done
  echo "error: Python 3.11 or newer is required (set PYTHON=/path/to/python3.11)" >&2
  return 1
}

ensure_venv() {
  local extras="${1:-dev}" python stamp wanted
  if [[ ! -x "${VENV}/bin/python" ]] || ! "${VENV}/bin/python" -c 'import sys' &>/dev/null; then
    python="$(find_python)"
    echo "==> creating ${VENV} with $("${python}" --version)" >&2
    rm -rf "${VENV}"
    "${python}" -m venv "${VENV}"
  fi
  stamp="${VENV}/.mlops-installed"
  wanted="${extras} $(sha256sum "${REPO_ROOT}/pyproject.toml" | cut -d' ' -f1)"
  if [[ ! -f "${stamp}" || "$(cat "${stamp}")" != "${wanted}" ]]; then
    echo "==> installing the project with extras [${extras}] into ${VENV}" >&2
    "${VENV}/bin/python" -m pip install --quiet --upgrade pip >&2
    "${VENV}/bin/python" -m pip install --quiet -e "${REPO_ROOT}[${extras}]" >&2
    echo "${wanted}" >"${stamp}"
  fi
}
