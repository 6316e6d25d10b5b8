#!/usr/bin/env bash
# Build the project's three images from the working tree, under the names and tags the kind
# cluster's overlay pins (hack/kind-up.sh then loads them into kind).
#
# Usage: hack/build-images.sh [--list] [-h|--help]
#   --list   print "<image> <Dockerfile>" per image and build nothing
#
# Images (built from the repository root, so every COPY sees the tree as it is now):
#   ${MLOPS_IMAGE_PREFIX}/model-server:${MLOPS_IMAGE_TAG}   serving/Dockerfile
#   ${MLOPS_IMAGE_PREFIX}/mlops-jobs:${MLOPS_IMAGE_TAG}     workflows/Dockerfile
#   ${MLOPS_IMAGE_PREFIX}/mlflow-server:${MLOPS_IMAGE_TAG}  infra/mlflow/Dockerfile
#
# Environment:
#   CONTAINER_ENGINE    docker (default) or podman
#   MLOPS_IMAGE_PREFIX  default localhost/mlops: a name no registry serves, so a cluster can only
#                       run what was loaded into it
#   MLOPS_IMAGE_TAG     default: the version in pyproject.toml (the tag release.env, the workflows
#                       kustomization and the MLflow Deployment pin)
#   PYTHON_IMAGE        base image of all three (default: the Dockerfiles' pinned python image)
#   KUBECTL_IMAGE       where the jobs image takes /bin/kubectl from (default: the Dockerfile's)
#   ENGINE_BUILD_FLAGS  extra flags for "<engine> build", split on spaces (e.g. "--network host")
# Prints each image's build time and size.
set -o errexit -o nounset -o pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." &>/dev/null && pwd -P)"
cd "${REPO_ROOT}"

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${REPO_ROOT}/hack/build-images.sh"; }
log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

project_version() { sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -n 1; }

ENGINE="${CONTAINER_ENGINE:-docker}"
PREFIX="${MLOPS_IMAGE_PREFIX:-localhost/mlops}"
TAG="${MLOPS_IMAGE_TAG:-$(project_version)}"
[[ -n "${TAG}" ]] || die "no MLOPS_IMAGE_TAG and no version in pyproject.toml"

# name -> Dockerfile; the order is the build order.
IMAGES=(model-server mlops-jobs mlflow-server)
declare -A DOCKERFILES=(
  [model-server]=serving/Dockerfile
  [mlops-jobs]=workflows/Dockerfile
  [mlflow-server]=infra/mlflow/Dockerfile
)

LIST=false
while (($#)); do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --list) LIST=true ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
  shift
done

if [[ "${LIST}" == true ]]; then
  for name in "${IMAGES[@]}"; do
    printf '%s/%s:%s %s\n' "${PREFIX}" "${name}" "${TAG}" "${DOCKERFILES[${name}]}"
  done
  exit 0
fi

command -v "${ENGINE}" &>/dev/null || die "${ENGINE} not found (set CONTAINER_ENGINE=docker|podman)"

build_args=()
[[ -z "${PYTHON_IMAGE:-}" ]] || build_args+=(--build-arg "PYTHON_IMAGE=${PYTHON_IMAGE}")
[[ -z "${KUBECTL_IMAGE:-}" ]] || build_args+=(--build-arg "KUBECTL_IMAGE=${KUBECTL_IMAGE}")
extra=()
# shellcheck disable=SC2206 # split on purpose: flags given as one string
[[ -z "${ENGINE_BUILD_FLAGS:-}" ]] || extra=(${ENGINE_BUILD_FLAGS})

summary=()
for name in "${IMAGES[@]}"; do
  image="${PREFIX}/${name}:${TAG}"
  log "building ${image} from ${DOCKERFILES[${name}]} with ${ENGINE}"
  started=${SECONDS}
  "${ENGINE}" build "${extra[@]}" "${build_args[@]}" -f "${DOCKERFILES[${name}]}" -t "${image}" .
  size="$("${ENGINE}" image inspect --format '{{.Size}}' "${image}")"
  summary+=("$(printf '%-44s %6d MB %5d s' "${image}" $((size / 1000000)) $((SECONDS - started)))")
done
printf '%-44s %9s %7s\n' image size build
printf '%s\n' "${summary[@]}"
