# Sourced helper of the kind scripts: the in-cluster Gitea (clusters/kind/gitea/) through its API.
# shellcheck shell=bash
# Needs kc (hack/lib/kind.sh), curl, git, openssl. Credentials never reach a command line: curl
# reads them from its --config on stdin, git from a credential helper that prints environment
# variables of its own process.

GITEA_NAMESPACE=gitea
GITEA_ORG=mlops
GITEA_REPO=mlops-platform
GITEA_BOT=mlops-promotion-bot
GITEA_LOCAL_PORT="${GITEA_LOCAL_PORT:-3000}"
GITEA_LOCAL_URL="http://127.0.0.1:${GITEA_LOCAL_PORT}"
GITEA_PORT_FORWARD_PID=""

# The admin Secret the chart reads (gitea.admin.existingSecret); created once, kept afterwards.
gitea_admin_secret() {
  if kc -n "${GITEA_NAMESPACE}" get secret gitea-admin &>/dev/null; then
    return 0
  fi
  local dir
  dir="$(mktemp -d)"
  (umask 077 && printf '%s' gitea-admin >"${dir}/username" && openssl rand -hex 24 | tr -d '\n' >"${dir}/password")
  kc -n "${GITEA_NAMESPACE}" create secret generic gitea-admin \
    --from-file=username="${dir}/username" --from-file=password="${dir}/password" >/dev/null
  rm -rf "${dir}"
  log "secret ${GITEA_NAMESPACE}/gitea-admin written"
}

gitea_admin_field() {
  kc -n "${GITEA_NAMESPACE}" get secret gitea-admin -o "jsonpath={.data.$1}" | base64 -d
}

# Port-forward to Gitea on 127.0.0.1:${GITEA_LOCAL_PORT} until gitea_stop (or the script) ends.
gitea_start() {
  kc -n "${GITEA_NAMESPACE}" rollout status deployment/gitea --timeout=600s
  kc -n "${GITEA_NAMESPACE}" port-forward svc/gitea-http "${GITEA_LOCAL_PORT}:3000" >/dev/null 2>&1 &
  GITEA_PORT_FORWARD_PID=$!
  local i
  for i in $(seq 60); do
    curl -fsS -o /dev/null "${GITEA_LOCAL_URL}/api/healthz" 2>/dev/null && return 0
    sleep 2
  done
  die "Gitea did not answer on ${GITEA_LOCAL_URL} (i=${i})"
}

gitea_stop() {
  [[ -z "${GITEA_PORT_FORWARD_PID}" ]] || kill "${GITEA_PORT_FORWARD_PID}" 2>/dev/null || true
  GITEA_PORT_FORWARD_PID=""
}

# gitea_api METHOD PATH [JSON] : as the admin; prints the body, returns 0 on 2xx, 1 on 404, dies otherwise.
gitea_api() {
  local method="$1" path="$2" body="${3:-}" user password out status
  user="$(gitea_admin_field username)"
  password="$(gitea_admin_field password)"
  out="$(mktemp)"
  status="$(printf 'user = "%s:%s"\n' "${user}" "${password}" |
    curl -sS --config - -X "${method}" -H 'Content-Type: application/json' ${body:+--data "${body}"} \
      -o "${out}" -w '%{http_code}' "${GITEA_LOCAL_URL}/api/v1${path}")"
  cat "${out}"
  rm -f "${out}"
  case "${status}" in
    2??) return 0 ;;
    404) return 1 ;;
    *) die "Gitea ${method} ${path}: HTTP ${status}" ;;
  esac
}

# The organisation, the repository (readable without a login inside the cluster, so Argo CD needs
# no credentials) and the bot with write access to it.
gitea_seed_repository() {
  gitea_api GET "/orgs/${GITEA_ORG}" >/dev/null ||
    gitea_api POST /orgs "{\"username\": \"${GITEA_ORG}\", \"visibility\": \"public\"}" >/dev/null
  gitea_api GET "/repos/${GITEA_ORG}/${GITEA_REPO}" >/dev/null ||
    gitea_api POST "/orgs/${GITEA_ORG}/repos" \
      "{\"name\": \"${GITEA_REPO}\", \"private\": false, \"default_branch\": \"main\"}" >/dev/null
  local password
  password="$(openssl rand -hex 24)"
  if gitea_api GET "/users/${GITEA_BOT}" >/dev/null; then
    gitea_api PATCH "/admin/users/${GITEA_BOT}" \
      "{\"login_name\": \"${GITEA_BOT}\", \"source_id\": 0, \"password\": \"${password}\", \"must_change_password\": false}" >/dev/null
  else
    gitea_api POST /admin/users "{\"username\": \"${GITEA_BOT}\", \"email\": \"${GITEA_BOT}@mlops.local\",
      \"password\": \"${password}\", \"must_change_password\": false}" >/dev/null
  fi
  gitea_api PUT "/repos/${GITEA_ORG}/${GITEA_REPO}/collaborators/${GITEA_BOT}" '{"permission": "write"}' >/dev/null
  GITEA_BOT_PASSWORD="${password}"
}

# Push the local clone's HEAD to main. Never forced: once the bot's pull requests are merged in
# Gitea, its main is ahead of the clone, and the push says so instead of discarding them.
gitea_push_clone() {
  local user password
  user="$(gitea_admin_field username)"
  password="$(gitea_admin_field password)"
  if [[ -n "$(git status --porcelain --untracked-files=no)" ]]; then
    log "the working tree has uncommitted changes: Argo CD deploys the commits only (HEAD $(git rev-parse --short HEAD))"
  fi
  # shellcheck disable=SC2016 # expanded by the helper's shell, from its environment
  if GITEA_USER="${user}" GITEA_PASSWORD="${password}" git \
    -c credential.helper= \
    -c 'credential.helper=!f() { echo "username=${GITEA_USER}"; echo "password=${GITEA_PASSWORD}"; }; f' \
    push --quiet "${GITEA_LOCAL_URL}/${GITEA_ORG}/${GITEA_REPO}.git" HEAD:refs/heads/main; then
    log "pushed HEAD ($(git rev-parse --short HEAD)) to ${GITEA_ORG}/${GITEA_REPO} main in Gitea"
  else
    log "Gitea's main has commits this clone lacks (merged promotions?): kept; fetch them with"
    log "  git pull ${GITEA_LOCAL_URL}/${GITEA_ORG}/${GITEA_REPO}.git main   (while the port-forward runs)"
  fi
}

# A new API token of the bot (repository and pull-request write), printed on stdout.
gitea_bot_token() {
  local out
  out="$(printf 'user = "%s:%s"\n' "${GITEA_BOT}" "${GITEA_BOT_PASSWORD}" |
    curl -fsS --config - -X POST -H 'Content-Type: application/json' \
      --data "{\"name\": \"promotion-$(date +%s)\", \"scopes\": [\"write:repository\", \"write:issue\"]}" \
      "${GITEA_LOCAL_URL}/api/v1/users/${GITEA_BOT}/tokens")" || die "Gitea refused to create the bot's token"
  sed -n 's/.*"sha1":"\([^"]*\)".*/\1/p' <<<"${out}"
}

# The URL of the newest open pull request of the bot (empty when none).
gitea_newest_pull() {
  gitea_api GET "/repos/${GITEA_ORG}/${GITEA_REPO}/pulls?state=open&sort=newest&limit=1" |
    sed -n 's/.*"html_url":"\([^"]*\/pulls\/[0-9]*\)".*/\1/p' | head -n 1
}
