#!/usr/bin/env bash
# The alerting rules (the PrometheusRules of infra/monitoring/rules) pass `promtool check rules`
# and their unit tests (`promtool test rules` of tests/drift/alert-rules.test.yaml).
#
#   hack/verify-promtool.sh
set -o errexit -o nounset -o pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." &>/dev/null && pwd -P)"
cd "${REPO_ROOT}"
# shellcheck source=hack/lib/verify.sh
source "${REPO_ROOT}/hack/lib/verify.sh"

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,5p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit 0
fi

promtool="$(require_tool promtool)"
ensure_venv dev
workdir="$(mktemp -d)"
trap 'rm -rf "${workdir}"' EXIT

# promtool reads plain rule files: the spec.groups of every PrometheusRule, in one file.
"${VENV}/bin/python" - "${workdir}/rules.yaml" infra/monitoring/rules/prometheusrule-*.yaml <<'PY'
import sys
from pathlib import Path

import yaml

groups = []
for manifest in sys.argv[2:]:
    for doc in yaml.safe_load_all(Path(manifest).read_text()):
        if doc and doc.get("kind") == "PrometheusRule":
            groups.extend(doc["spec"]["groups"])
Path(sys.argv[1]).write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
PY
cp tests/drift/alert-rules.test.yaml "${workdir}/"
cd "${workdir}"
"${promtool}" check rules rules.yaml
"${promtool}" test rules alert-rules.test.yaml
