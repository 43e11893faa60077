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

# shellcheck source=scripts/lib/pyvenv.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/pyvenv.sh"

_pytools_log() { echo "pytools: $*" >&2; }

# The virtualenv holding exactly PYTOOLS_PINS (scripts/lib/pyvenv.sh).
_pytools_venv() {
  offboard_pyvenv pytools "$1" 9 "${PYTOOLS_PINS[@]}"
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
