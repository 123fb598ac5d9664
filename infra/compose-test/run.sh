#!/usr/bin/env bash
# `make compose-test`: run docker-compose.yml for real, on a Docker engine of its own.
#
#   1. an engine: the one `docker info` reaches, else a dockerd started here with every
#      root (data, exec, pid file, socket) in a temp dir;
#   2. base images made locally, since no registry can be reached: a debootstrapped
#      bookworm imported as djs-base:bookworm, and on it stand-ins tagged exactly as
#      docker-compose.yml and infra/Dockerfile name them (infra/compose-test/standins/);
#   3. `docker compose up --build --wait --scale worker=3`, an admin key made with
#      `docker compose exec`, jobs submitted through the API, all of them completed, by
#      more than one runner; the dashboard answers;
#   4. always: `docker compose down -v`, the dockerd it started stopped, its temp dirs gone.
#
# Exit codes: 0 passed; 1 the stack failed; 77 no engine can run on this machine. A skip
# always prints a "COMPOSE TEST SKIPPED: <reason>" banner; with DJS_COMPOSE_SKIP_OK=1 (set
# by .ci/run) it then exits 0, so a machine without an engine does not fail CI but says so.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/../.." && pwd)"
HERE="$REPO/infra/compose-test"
CACHE="${DJS_COMPOSE_CACHE:-$REPO/.compose-cache}"
JOBS="${DJS_COMPOSE_JOBS:-60}"
WORKERS="${DJS_COMPOSE_WORKERS:-3}"
# Bounds: a cold run took about 2-3 min on 2 shared cores; these only stop a hung run.
ENGINE_WAIT_S=60
JOBS_WAIT_S=300
SKIP=77

log() { printf '[compose-test %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }
skip() {
  local bar='!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!'
  printf '%s\nCOMPOSE TEST SKIPPED: %s\n%s\n' "$bar" "$*" "$bar" >&2
  [ "${DJS_COMPOSE_SKIP_OK:-0}" = 1 ] && exit 0
  exit "$SKIP"
}

COMPOSE="$REPO/.venv/bin/docker-compose"
[ -x "$COMPOSE" ] || COMPOSE="$(command -v docker-compose || true)"
[ -n "$COMPOSE" ] || die "no docker-compose binary (it comes with the test extra: make install)"
command -v docker >/dev/null || die "no docker CLI on PATH"

# The compose project gets its own name, so it never touches another stack on the engine.
export COMPOSE_PROJECT_NAME="djs-compose-test-$$"
export COMPOSE_FILE="$REPO/docker-compose.yml"
unset COMPOSE_PROFILES
DJS_KEY_PEPPER="compose-test-pepper-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
export DJS_KEY_PEPPER
# The host port of the API: 8000 as in the README, unless something there already answers
# (a `djs dev` on this machine); then a free one.
if [ -z "${DJS_API_PORT:-}" ]; then
  DJS_API_PORT=8000
  if (exec 3<>/dev/tcp/127.0.0.1/8000) 2>/dev/null; then
    DJS_API_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  fi
fi
export DJS_API_PORT
# The legacy builder takes a local image for FROM instead of asking a registry for it.
export DOCKER_BUILDKIT=0 COMPOSE_DOCKER_CLI_BUILD=0

TMP=""
HAD_DOCKER0=""
TMP_BODY="$(mktemp)"
DOCKERD_PID=""
STACK_UP=""
cleanup() {
  local rc=$?
  set +e
  if [ -n "$STACK_UP" ]; then
    if [ "$rc" -ne 0 ]; then
      log "logs of the failed stack (last 40 lines per service):"
      "$COMPOSE" logs --no-color --tail 40 >&2
    fi
    log "tearing down the stack"
    "$COMPOSE" down -v --remove-orphans --timeout 10 >/dev/null 2>&1
  fi
  if [ -n "$DOCKERD_PID" ]; then
    # The containerd this dockerd started (its pid file is under our exec root) outlives
    # dockerd by a moment and still writes into the data root: wait for both.
    local pids="$DOCKERD_PID" pid
    pid="$(cat "$TMP/exec/containerd/containerd.pid" 2>/dev/null || true)"
    [ -n "$pid" ] && pids="$pids $pid"
    log "stopping dockerd (pid $DOCKERD_PID) and its containerd"
    kill "$DOCKERD_PID" 2>/dev/null
    for pid in $pids; do
      for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      kill -9 "$pid" 2>/dev/null
    done
    # Mounts left under the temp dir by a hard kill would keep rm -rf from removing it.
    grep -o " $TMP/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
    # dockerd leaves its default bridge behind; drop it if this run made it. (Its iptables
    # chains stay: another engine may share them, and a next dockerd reuses them.)
    [ -z "$HAD_DOCKER0" ] && ip link delete docker0 2>/dev/null
  fi
  if [ -n "$TMP" ]; then
    for _ in 1 2 3; do rm -rf "$TMP" 2>/dev/null && break; sleep 1; done
    [ -e "$TMP" ] && log "could not remove $TMP entirely"
  fi
  rm -f "$TMP_BODY"
  rm -rf "$HERE/standins/python/ca"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- 1. an engine -------------------------------------------------------------------------
start_engine() {
  if docker info >/dev/null 2>&1; then
    log "using the engine docker info reaches (${DOCKER_HOST:-default socket})"
    return
  fi
  if ! command -v dockerd >/dev/null; then
    [ "$(id -u)" = 0 ] || skip "dockerd is not installed and installing it needs root"
    log "installing docker.io (dockerd)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io) \
      >/dev/null 2>&1 || skip "apt-get install docker.io failed"
  fi
  [ "$(id -u)" = 0 ] || skip "dockerd needs root"
  ip link show docker0 >/dev/null 2>&1 && HAD_DOCKER0=1
  TMP="$(mktemp -d /tmp/djs-compose-test.XXXXXX)"
  mkdir -p "$TMP/data" "$TMP/exec"
  export DOCKER_HOST="unix://$TMP/docker.sock"
  log "starting dockerd in $TMP"
  dockerd --data-root "$TMP/data" --exec-root "$TMP/exec" --pidfile "$TMP/dockerd.pid" \
    -H "$DOCKER_HOST" --containerd-namespace "djs-ct-$$" --containerd-plugins-namespace "djs-ct-$$-p" \
    >"$TMP/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  local deadline=$((SECONDS + ENGINE_WAIT_S))
  until docker info >/dev/null 2>&1; do
    if ! kill -0 "$DOCKERD_PID" 2>/dev/null; then
      DOCKERD_PID=""
      tail -n 15 "$TMP/dockerd.log" >&2
      skip "dockerd exited at start (no privileges or no kernel support?)"
    fi
    [ "$SECONDS" -lt "$deadline" ] || { tail -n 15 "$TMP/dockerd.log" >&2; skip "dockerd did not answer within ${ENGINE_WAIT_S}s"; }
    sleep 0.5
  done
  # A container must reach the network through the bridge (pip, in the image build):
  # checked below by the builds themselves; here only that a container runs at all.
  log "dockerd answers ($(docker version --format '{{.Server.Version}}'))"
}

# --- 2. base images -----------------------------------------------------------------------
# The packages every stand-in needs go into the one debootstrapped tree, so the stand-in
# builds need no apt and a warm run (cached tarball) builds them in seconds.
PACKAGES="ca-certificates,postgresql-15,redis-server,python3,python3-venv,python3-pip,python-is-python3"

apt_mirror() {
  # The mirror apt already uses (deb822 `URIs:` or one-line `deb URI bookworm`).
  local uri
  uri="$(grep -hs -A3 '^Types: *deb' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
         | grep -m1 -E '^URIs:.*/debian/?$' | awk '{print $2}')"
  [ -n "$uri" ] || uri="$(grep -hsE '^deb +[^ ]+/debian/? +bookworm' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
         | awk '{print $2}' | head -n1)"
  echo "${uri:-http://deb.debian.org/debian}"
}

base_tarball() {
  local key tarball root mirror
  key="$(printf '%s' "$PACKAGES" | sha256sum | cut -c1-12)"
  tarball="$CACHE/bookworm-minbase-$key.tar"
  if [ -s "$tarball" ]; then
    log "base tree from the cache: $tarball"
    echo "$tarball"
    return
  fi
  command -v debootstrap >/dev/null || {
    log "installing debootstrap"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap) \
      >/dev/null 2>&1 || die "apt-get install debootstrap failed"
  }
  mkdir -p "$CACHE"
  mirror="$(apt_mirror)"
  root="$(mktemp -d "$CACHE/root.XXXXXX")"
  log "debootstrap bookworm from $mirror (once; cached in $CACHE)"
  if ! debootstrap --variant=minbase --include="$PACKAGES" bookworm "$root" "$mirror" \
      >"$root.log" 2>&1; then
    tail -n 20 "$root.log" >&2
    rm -rf "$root" "$root.log"
    die "debootstrap failed"
  fi
  # Apt lists and caches are not wanted in an image; the tarball is written whole, then renamed.
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb "$root.log"
  tar -C "$root" -cf "$tarball.part" .
  rm -rf "$root"
  mv "$tarball.part" "$tarball"
  echo "$tarball"
}

build_base_images() {
  local tarball proxy_args=() var
  tarball="$(base_tarball)"
  log "docker import -> djs-base:bookworm"
  docker import - djs-base:bookworm <"$tarball" >/dev/null
  for var in HTTP_PROXY HTTPS_PROXY NO_PROXY http_proxy https_proxy no_proxy; do
    [ -n "${!var:-}" ] && proxy_args+=(--build-arg "$var")
  done
  # The host's own CAs (an HTTPS proxy signs with one) go into the Python stand-in.
  rm -rf "$HERE/standins/python/ca"
  mkdir -p "$HERE/standins/python/ca"
  cp /usr/local/share/ca-certificates/*.crt "$HERE/standins/python/ca/" 2>/dev/null || true
  local image dir
  for pair in "postgres:16-alpine=postgres" "redis:7-alpine=redis" "$(python_base)=python"; do
    image="${pair%%=*}" dir="${pair#*=}"
    log "building stand-in $image"
    docker build -q ${proxy_args[@]+"${proxy_args[@]}"} -t "$image" "$HERE/standins/$dir" >/dev/null \
      || die "building the stand-in $image failed"
  done
  rm -rf "$HERE/standins/python/ca"
}

python_base() {
  # Whatever infra/Dockerfile builds FROM (one name for both stages).
  local names
  names="$(awk 'toupper($1) == "FROM" {print $2}' "$REPO/infra/Dockerfile" | sort -u)"
  [ "$(echo "$names" | wc -l)" = 1 ] || die "infra/Dockerfile has more than one base image: $names"
  echo "$names"
}

# --- 3. the stack -------------------------------------------------------------------------
api() { # METHOD PATH [BODY] -> body on stdout; fails on a non-2xx answer
  curl -fsS --max-time 10 -X "$1" "http://127.0.0.1:$DJS_API_PORT$2" \
    -H "Authorization: Bearer $KEY" -H 'content-type: application/json' ${3:+-d "$3"}
}

run_stack() {
  # migrate, api and worker build the same image: the legacy builder would build it three
  # times at once (no shared cache yet, ~3x the CPU); one build first, and `up --build`
  # below finds every step cached.
  STACK_UP=1
  log "docker compose build api"
  "$COMPOSE" build --quiet api >&2 || die "building djs:local failed"
  log "docker compose up --build --wait --scale worker=$WORKERS"
  "$COMPOSE" up --build --wait --wait-timeout 300 --scale "worker=$WORKERS" >&2 \
    || die "docker compose up --wait did not bring the stack up healthy"
  "$COMPOSE" ps >&2

  log "making the first admin key with docker compose exec"
  KEY="$("$COMPOSE" exec -T api djs keys create --name compose-test --role admin)" \
    || die "djs keys create failed"
  [[ "$KEY" == djs_* ]] || die "djs keys create printed no key: $KEY"

  log "submitting $JOBS jobs through the API on :$DJS_API_PORT"
  local ids=() i body
  for i in $(seq 1 "$JOBS"); do
    # A short sleep per job, so that one runner cannot take them all before the others poll.
    body="$(api POST /jobs '{"type": "sleep", "payload": {"seconds": 0.2}}')" \
      || die "POST /jobs failed on job $i"
    ids+=("$(python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])' <<<"$body")")
  done

  log "waiting (at most ${JOBS_WAIT_S}s) for every job to complete"
  local deadline=$((SECONDS + JOBS_WAIT_S)) report
  while :; do
    # summarize.py exits 0 once no job is pending or active any more.
    report="$(for id in "${ids[@]}"; do api GET "/jobs/$id" || echo '{}'; echo; done \
              | python3 "$HERE/summarize.py")" && break
    [ "$SECONDS" -lt "$deadline" ] || die "not every job finished within ${JOBS_WAIT_S}s: $report"
    sleep 2
  done
  log "jobs: $report"
  local completed ran_on
  completed="$(sed -n 's/.*"completed": \([0-9]*\).*/\1/p' <<<"$report")"
  ran_on="$(sed -n 's/.*"runners": \([0-9]*\).*/\1/p' <<<"$report")"
  [ "$completed" = "$JOBS" ] || die "$completed of $JOBS jobs completed"
  [ "$ran_on" -gt 1 ] || die "every job ran on one runner: the runners do not share the work"

  local workers
  workers="$(api GET /workers | python3 -c 'import json,sys; d=json.load(sys.stdin); w=d.get("workers", d) if isinstance(d, dict) else d; print(len(w))')"
  log "GET /workers lists $workers live runners"
  [ "$workers" -ge "$WORKERS" ] || die "GET /workers lists $workers runners, expected $WORKERS"

  local code type
  code="$(curl -s -o "$TMP_BODY" -w '%{http_code} %{content_type}' --max-time 10 "http://127.0.0.1:$DJS_API_PORT/admin/queues")"
  type="${code#* }"
  [[ "$code" == 200\ * && "$type" == text/html* ]] || die "GET /admin/queues answered $code"
  grep -qi '<html' "$TMP_BODY" || die "GET /admin/queues is not an HTML page"
  log "GET /admin/queues: 200 $type"
}

start=$SECONDS
start_engine
build_base_images
log "engine and stand-ins ready after $((SECONDS - start))s"
run_stack
log "PASSED in $((SECONDS - start))s"
