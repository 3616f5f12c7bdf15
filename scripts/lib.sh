# scripts/lib.sh: shared by scripts/test and scripts/run: install missing Debian packages, build.
# Sourced, not executed.

MQSYNC_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Everything the build, the tests, the benchmarks and the local stack need.
MQSYNC_PACKAGES=(
  build-essential cmake pkg-config git ca-certificates procps iproute2
  libpq-dev libmicrohttpd-dev libjansson-dev libssl-dev libcmocka-dev zlib1g-dev
  mosquitto-dev libmosquitto-dev mosquitto mosquitto-clients
  postgresql postgresql-contrib postgresql-client
  libcurl4-openssl-dev curl
  python3 python3-paho-mqtt python3-psycopg2
  wrk
  clang-format-14
  clang-14 libclang-rt-14-dev
  libcjson-dev  # the compatibility matrix builds upstream 2.0.21 and 2.1.2 with it
)
# The formatter scripts/test checks with: pinned, so every machine formats alike.
MQSYNC_CLANG_FORMAT=clang-format-14

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Installs the packages that are missing (quick no-op when all are there).
mqsync_install_deps() {
  local missing=()
  for p in "${MQSYNC_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  # policy-rc.d: keep Debian from starting system-wide postgresql/mosquitto services; the project
  # starts its own servers on loopback.
  local policy=/usr/sbin/policy-rc.d created=0
  if [ ! -e "$policy" ] && [ -z "$sudo" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && created=1
  fi
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
  local rc=$?
  [ $created -eq 1 ] && rm -f "$policy"
  return $rc
}

# mqsync_build DIR [cmake args...]: configure and build into DIR.
mqsync_build() {
  local dir=$1; shift
  cmake -S "$MQSYNC_ROOT" -B "$dir" "$@" >/dev/null
  cmake --build "$dir" -j"$(nproc)"
}
