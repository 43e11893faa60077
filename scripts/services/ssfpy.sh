# Test tool: an independent Shared Signals receiver's Python (PyJWT with `cryptography`, from
# PyPI), which the SSF transmitter's tests run to verify our SETs against our JWKS.
#
# Sourced by scripts/test (set -euo pipefail). Defines `ssfpy_start` and `ssfpy_stop`.
# `ssfpy_start` makes (once) a Python virtualenv holding the pinned packages below, in
# $OFFBOARD_SSFPY_VENV (default: ~/.cache/offboard/ssfpy-venv, remade when its pins change),
# and exports:
#
#   OFFBOARD_TEST_SSF_PYTHON   the virtualenv's python, which imports jwt (PyJWT) with ES256
#
# It starts no server (each test starts the receiver script itself), so `ssfpy_stop` has
# nothing to stop. Needs Python >= 3.9 with venv (installs python3-venv when missing).

SSFPY_PINS=(PyJWT==2.15.1 cryptography==50.0.2)

_ssfpy_log() { echo "ssfpy: $*" >&2; }

ssfpy_start() {
  local venv python stamp
  venv="${OFFBOARD_SSFPY_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/offboard/ssfpy-venv}"
  stamp="${SSFPY_PINS[*]}"
  if ! [ -x "$venv/bin/python" ] || [ "$(cat "$venv/.offboard-pins" 2>/dev/null)" != "$stamp" ]; then
    python=$(command -v python3)
    if ! "$python" -c 'import venv, ensurepip' 2>/dev/null; then
      _ssfpy_log "installing python3-venv"
      export DEBIAN_FRONTEND=noninteractive
      apt-get -o DPkg::Lock::Timeout=300 update -qq
      apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends python3-venv >/dev/null
    fi
    _ssfpy_log "making $venv (${SSFPY_PINS[*]})"
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "${SSFPY_PINS[@]}"
    echo "$stamp" >"$venv/.offboard-pins"
  fi
  "$venv/bin/python" -c 'import jwt, jwt.algorithms; assert jwt.algorithms.has_crypto' >/dev/null
  export OFFBOARD_TEST_SSF_PYTHON="$venv/bin/python"
  _ssfpy_log "PyJWT in $OFFBOARD_TEST_SSF_PYTHON"
}

ssfpy_stop() {
  :
}
