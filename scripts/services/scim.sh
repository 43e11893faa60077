# Test service: scim2-server (PyPI), a SCIM 2.0 service provider we did not write, on loopback,
# and scim2-tester, the compliance checker our SCIM simulator is held to.
#
# Sourced by scripts/test (set -euo pipefail). Defines `scim_start` and `scim_stop`.
# `scim_start` makes (once) a Python virtualenv holding the pinned packages below, in
# $OFFBOARD_SCIM_VENV (default: ~/.cache/offboard/scim-venv-<pins>, reused while its pins
# match), draws a bearer token, replaces a server left running by an earlier run, starts
# `scim2-server` on a free loopback port with every feature it has (PATCH, filters, ETags,
# Groups, sorting, bulk) and the token required, waits until it answers, and exports:
#
#   OFFBOARD_TEST_SCIM_URL     http://127.0.0.1:<port>/v2, the SCIM base URL
#   OFFBOARD_TEST_SCIM_TOKEN   the bearer token it requires
#   OFFBOARD_TEST_SCIM_PYTHON  the virtualenv's python, which imports scim2_tester (the
#                              simulator's compliance test runs it)
#
# `scim_stop` stops the server. Needs Python >= 3.11 with venv (installs python3-venv when the
# venv module is missing).

SCIM_PINS=(scim2-server==0.8.3 "scim2-tester[httpx2]==0.5.2" scim2-models==0.12.3 scim2-client==0.13.2 httpx2==2.17.0)

# shellcheck source=scripts/lib/pyvenv.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/pyvenv.sh"

_scim_log() { echo "scim: $*" >&2; }

# The virtualenv holding exactly SCIM_PINS (scripts/lib/pyvenv.sh).
_scim_venv() {
  offboard_pyvenv scim "$1" 11 "${SCIM_PINS[@]}"
}

# A free TCP port on 127.0.0.1.
_scim_free_port() {
  "$1" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

_scim_kill() {
  local dir="$1" pid i
  [ -s "$dir/server.pid" ] || return 0
  pid=$(cat "$dir/server.pid")
  if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q scim2-server; then
    kill "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/server.pid"
}

scim_start() {
  local dir="$OFFBOARD_TEST_DIR/scim" venv port token url i
  venv="${OFFBOARD_SCIM_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/offboard/scim-venv}"
  mkdir -p "$dir"
  _scim_venv "$venv"
  _scim_kill "$dir"
  port=$(_scim_free_port "$venv/bin/python")
  token="scim-test-$("$venv/bin/python" -c 'import secrets; print(secrets.token_hex(16))')"
  # The token is passed on the command line: this is a throwaway server on loopback.
  "$venv/bin/scim2-server" --hostname 127.0.0.1 --port "$port" --bearer-token "$token" \
    >"$dir/server.log" 2>&1 &
  echo $! >"$dir/server.pid"
  url="http://127.0.0.1:$port/v2"
  for i in $(seq 1 101); do
    if "$venv/bin/python" - "$url" "$token" <<'PY' 2>/dev/null; then
import sys, urllib.request
r = urllib.request.Request(sys.argv[1] + "/ServiceProviderConfig",
                           headers={"Authorization": "Bearer " + sys.argv[2]})
with urllib.request.urlopen(r, timeout=1) as answer:
    sys.exit(0 if answer.status == 200 else 1)
PY
      break
    fi
    if [ "$i" = 101 ] || ! kill -0 "$(cat "$dir/server.pid")" 2>/dev/null; then
      _scim_log "scim2-server did not start on 127.0.0.1:$port:"
      cat "$dir/server.log" >&2
      return 1
    fi
    sleep 0.1
  done
  export OFFBOARD_TEST_SCIM_URL="$url"
  export OFFBOARD_TEST_SCIM_TOKEN="$token"
  export OFFBOARD_TEST_SCIM_PYTHON="$venv/bin/python"
  _scim_log "scim2-server at $OFFBOARD_TEST_SCIM_URL; scim2-tester in $OFFBOARD_TEST_SCIM_PYTHON"
}

scim_stop() {
  _scim_kill "$OFFBOARD_TEST_DIR/scim"
}
