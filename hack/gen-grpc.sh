#!/usr/bin/env bash
# Regenerate the Python code of the Open Inference Protocol's gRPC service from its .proto:
# serving/mlops_serving/oip_grpc/grpc_predict_v2_pb2{.py,.pyi,_grpc.py}. The generated files are
# committed (the image needs no protoc); tests/serving/test_grpc.py checks they are current.
# Usage: hack/gen-grpc.sh   (needs grpcio-tools: the dev extra)
set -o errexit -o nounset -o pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." &> /dev/null && pwd -P)"
cd "${REPO_ROOT}"
PYTHON="${PYTHON:-${REPO_ROOT}/.venv/bin/python}"
OUT="${1:-serving}"

"${PYTHON}" -m grpc_tools.protoc -I serving --python_out="${OUT}" --pyi_out="${OUT}" --grpc_python_out="${OUT}" \
  mlops_serving/oip_grpc/grpc_predict_v2.proto
