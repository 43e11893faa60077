# Test tool: a Python virtualenv of pinned PyPI packages that tests use as independent
# implementations of what we sign and hash (no server).
#
# Sourced by scripts/test (set -euo pipefail). Defines `pytools_start` and `pytools_stop`.
# `pytools_start` makes (once) a virtualenv holding exactly PYTOOLS_PINS in
# $OFFBOARD_PYTOOLS_VENV (default: ~/.cache/offboard/pytools-venv), made again when the pins
# change, and exports:
#
#   OFFBOARD_TEST_PYTOOLS_PYTHON  the virtualenv's python, which imports nacl (PyNaCl,
#                                 libsodium's Ed25519: scripts/verify-evidence.py in
#                                 offboard-store/tests/evidence.rs) and jwt (PyJWT with
#                                 `cryptography` for ES256: the independent Shared Signals
#                                 receiver of offboard-connectors/ssf/tests/independent.rs)
#
# To add a package, append its pinned version to PYTOOLS_PINS: the next start rebuilds the
# venv. `pytools_stop` has nothing to stop. Needs Python >= 3.9 with venv
# (installs python3-venv when the venv module is missing).

PYTOOLS_PINS=(PyNaCl==1.5.0 PyJWT==2.15.1 cryptography==50.0.2)

_pytools_log() { echo "pytools: $*" >&2; }

_pytools_python() {
  local p
  for p in python3.13 python3.12 python3.11 python3.10 python3.9 python3; do
    if command -v "$p" >/dev/null 2>&1 &&
      "$p" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)' 2>/dev/null; then
      command -v "$p"
      return 0
    fi
  done
  _pytools_log "needs Python >= 3.9; none found"
  return 1
}

# The virtualenv holding exactly PYTOOLS_PINS, made when missing or stale.
_pytools_venv() {
  local venv="$1" python stamp
  stamp="${PYTOOLS_PINS[*]}"
  if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.offboard-pins" 2>/dev/null)" = "$stamp" ]; then
    return 0
  fi
  python=$(_pytools_python)
  if ! "$python" -c 'import venv, ensurepip' 2>/dev/null; then
    _pytools_log "installing python3-venv"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=300 update -qq
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends python3-venv >/dev/null
  fi
  _pytools_log "making $venv (${PYTOOLS_PINS[*]})"
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "${PYTOOLS_PINS[@]}"
  echo "$stamp" >"$venv/.offboard-pins"
}

pytools_start() {
  local venv
  venv="${OFFBOARD_PYTOOLS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/offboard/pytools-venv}"
  _pytools_venv "$venv"
  "$venv/bin/python" -c 'import nacl.signing, jwt, jwt.algorithms; assert jwt.algorithms.has_crypto' || {
    _pytools_log "$venv/bin/python cannot import nacl, or jwt with its crypto"
    return 1
  }
  export OFFBOARD_TEST_PYTOOLS_PYTHON="$venv/bin/python"
  _pytools_log "python with ${PYTOOLS_PINS[*]}: $OFFBOARD_TEST_PYTOOLS_PYTHON"
}

pytools_stop() {
  :
}
