#!/usr/bin/env bash
# Make stand-in base images where the registries' base images cannot be pulled (CI here), so that
# hack/build-images.sh can build the real Dockerfiles through their PYTHON_IMAGE / KUBECTL_IMAGE
# build arguments:
#   - a Debian root filesystem of the Dockerfiles' Debian release (debootstrap, minbase) with
#     Debian's python3 and python3-venv, linked as /usr/local/bin/python3 and /usr/local/bin/python
#     where the python image has them, and this machine's CA certificates (pip trusts them);
#   - an image holding only /bin/kubectl, copied from this machine's kubectl.
#
# Usage: hack/build-standin-base.sh [-h|--help]
# Prints "PYTHON_IMAGE=<image>" and "KUBECTL_IMAGE=<image>" (eval-able). An image that exists is
# kept (delete it to rebuild). Needs root, debootstrap, kubectl and the container engine.
# Environment:
#   CONTAINER_ENGINE  podman (default) or docker
#   DEBIAN_MIRROR     default: the first Debian mirror of this machine's apt sources
set -o errexit -o nounset -o pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." &>/dev/null && pwd -P)"
cd "${REPO_ROOT}"

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${REPO_ROOT}/hack/build-standin-base.sh"; }
log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

case "${1:-}" in
  -h | --help) usage; exit 0 ;;
  "") ;;
  *) usage >&2; die "unknown argument: $1" ;;
esac

ENGINE="${CONTAINER_ENGINE:-podman}"
for tool in "${ENGINE}" debootstrap kubectl tar; do
  command -v "${tool}" &>/dev/null || die "${tool} not found"
done
[[ "$(id -u)" == 0 ]] || die "debootstrap needs root"

# The Debian release of the Dockerfiles' base (python:<version>-slim-<release>), one for all three.
suites="$(sed -n 's/^ARG PYTHON_IMAGE=python:[0-9.]*-slim-\([a-z]*\)$/\1/p' \
  serving/Dockerfile workflows/Dockerfile infra/mlflow/Dockerfile | sort -u)"
[[ "$(wc -w <<<"${suites}")" == 1 ]] || die "the Dockerfiles do not agree on one Debian release: ${suites}"
SUITE="${suites}"
KUBECTL_VERSION="$(sed -n 's/^ARG KUBECTL_IMAGE=.*:\(v[0-9.]*\)$/\1/p' workflows/Dockerfile)"

debian_mirror() {
  local mirror
  mirror="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null |
    grep -oE 'https?://[^ ]+/debian/?( |$)' | grep -v -- '-security' | head -n 1 | tr -d ' ')" || true
  [[ -n "${mirror}" ]] || die "no Debian mirror in /etc/apt/sources.list*; set DEBIAN_MIRROR"
  printf '%s\n' "${mirror}"
}

PYTHON_IMAGE="localhost/mlops-standin/python:${SUITE}"
KUBECTL_IMAGE="localhost/mlops-standin/kubectl:${KUBECTL_VERSION}"

image_exists() { "${ENGINE}" image inspect "$1" &>/dev/null; }

if image_exists "${PYTHON_IMAGE}"; then
  log "${PYTHON_IMAGE} exists"
else
  mirror="${DEBIAN_MIRROR:-$(debian_mirror)}"
  work="$(mktemp -d)"
  trap 'rm -rf "${work}"' EXIT
  log "debootstrap ${SUITE} from ${mirror} (python3, python3-venv)"
  started=${SECONDS}
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    "${SUITE}" "${work}/rootfs" "${mirror}" >"${work}/debootstrap.log" 2>&1 ||
    { tail -n 20 "${work}/debootstrap.log" >&2; die "debootstrap failed"; }
  # This machine's trust store (a proxy that re-signs TLS needs its CA inside the builds too):
  # its local CAs (kept when an image runs update-ca-certificates), its bundle, and pip told to
  # use the bundle rather than the certifi copy an upgraded pip brings.
  if compgen -G '/usr/local/share/ca-certificates/*' >/dev/null; then
    cp -r /usr/local/share/ca-certificates/. "${work}/rootfs/usr/local/share/ca-certificates/"
  fi
  cp /etc/ssl/certs/ca-certificates.crt "${work}/rootfs/etc/ssl/certs/ca-certificates.crt"
  printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"${work}/rootfs/etc/pip.conf"
  ln -sf /usr/bin/python3 "${work}/rootfs/usr/local/bin/python3"
  ln -sf /usr/bin/python3 "${work}/rootfs/usr/local/bin/python"
  rm -rf "${work}/rootfs/var/cache/apt/archives/"*.deb "${work}/rootfs/var/lib/apt/lists/"*
  tar -C "${work}/rootfs" -c . | "${ENGINE}" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' - "${PYTHON_IMAGE}" >/dev/null
  log "${PYTHON_IMAGE}: $(("${SECONDS}" - started)) s"
fi

if image_exists "${KUBECTL_IMAGE}"; then
  log "${KUBECTL_IMAGE} exists"
else
  work="$(mktemp -d)"
  trap 'rm -rf "${work}"' EXIT
  mkdir -p "${work}/bin"
  # A version dispatcher (Google Cloud SDK's kubectl) keeps the real binaries beside it.
  kubectl="$(readlink -f "$(command -v kubectl)")"
  minor="${KUBECTL_VERSION#v}"
  minor="${minor%.*}"
  [[ ! -x "${kubectl}.${minor}" ]] || kubectl="${kubectl}.${minor}"
  cp "${kubectl}" "${work}/bin/kubectl"
  tar -C "${work}" -c bin | "${ENGINE}" import - "${KUBECTL_IMAGE}" >/dev/null
  log "${KUBECTL_IMAGE} from ${kubectl}: $("${kubectl}" version --client 2>/dev/null | head -n 1)"
fi

printf 'PYTHON_IMAGE=%s\nKUBECTL_IMAGE=%s\n' "${PYTHON_IMAGE}" "${KUBECTL_IMAGE}"
