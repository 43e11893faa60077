# Shared by scripts/services/*.sh (sourced): a Python virtualenv holding exactly a list of
# pinned PyPI packages, made when missing or when the pins change.
#
#   offboard_pyvenv NAME VENV MIN_MINOR PIN...
#
# NAME prefixes log lines; VENV is the virtualenv's directory; MIN_MINOR the lowest Python
# 3.x minor version the packages need. Installs python3-venv with apt when the venv module is
# missing. The pins are stamped in VENV/.offboard-pins.

_offboard_pyvenv_python() {
  local name="$1" minor="$2" p
  for p in python3.13 python3.12 python3.11 python3.10 python3.9 python3; do
    if command -v "$p" >/dev/null 2>&1 &&
      "$p" -c "import sys; sys.exit(0 if sys.version_info >= (3, $minor) else 1)" 2>/dev/null; then
      command -v "$p"
      return 0
    fi
  done
  echo "$name: needs Python >= 3.$minor; none found" >&2
  return 1
}

offboard_pyvenv() {
  local name="$1" venv="$2" minor="$3" python stamp
  shift 3
  stamp="$*"
  if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.offboard-pins" 2>/dev/null)" = "$stamp" ]; then
    return 0
  fi
  python=$(_offboard_pyvenv_python "$name" "$minor")
  if ! "$python" -c 'import venv, ensurepip' 2>/dev/null; then
    echo "$name: installing python3-venv" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=300 update -qq
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends python3-venv >/dev/null
  fi
  echo "$name: making $venv ($*)" >&2
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "$@"
  echo "$stamp" >"$venv/.offboard-pins"
}
