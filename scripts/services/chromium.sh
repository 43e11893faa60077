# Test service: ChromeDriver (Debian's chromium-driver) on loopback, driving headless Chromium
# for the browser tests (the email task page).
#
# Sourced by scripts/test (set -euo pipefail). Defines `chromium_start` and `chromium_stop`.
# `chromium_start` installs the Debian packages chromium and chromium-driver when a command is
# missing (apt-get update first, only then), replaces a chromedriver left by an earlier run
# (found by its pid file), starts chromedriver on 127.0.0.1, waits until it answers, and exports:
#
#   OFFBOARD_TEST_WEBDRIVER   http://127.0.0.1:9515, the WebDriver endpoint
#   OFFBOARD_TEST_CHROMIUM    the chromium binary the tests ask chromedriver to run
#
# The tests start Chromium through it headless (`--headless=new`), with `--no-sandbox` (CI runs
# as root), `--disable-gpu` and `--disable-dev-shm-usage`. The port can be changed with
# OFFBOARD_TEST_WEBDRIVER_PORT.

CHROMIUM_HOST=127.0.0.1
CHROMIUM_PORT="${OFFBOARD_TEST_WEBDRIVER_PORT:-9515}"

_chromium_log() { echo "chromium: $*" >&2; }

_chromium_port_open() {
  (exec 3<>"/dev/tcp/$CHROMIUM_HOST/$CHROMIUM_PORT") 2>/dev/null
}

_chromium_install() {
  command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 && return 0
  _chromium_log "installing chromium chromium-driver"
  export DEBIAN_FRONTEND=noninteractive
  # Another service may be installing at the same time: wait for the dpkg lock.
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends \
    chromium chromium-driver >/dev/null
  command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 || {
    _chromium_log "chromium and chromium-driver installed, but a command is still missing"
    return 1
  }
}

# Stops the chromedriver of an earlier run by its pid file (only if it is a chromedriver).
_chromium_kill() {
  local dir="$1" pid i
  [ -s "$dir/chromedriver.pid" ] || return 0
  pid=$(cat "$dir/chromedriver.pid")
  if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q chromedriver; then
    kill "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/chromedriver.pid"
}

chromium_start() {
  local dir="$OFFBOARD_TEST_DIR/chromium" i
  mkdir -p "$dir"
  _chromium_install
  _chromium_kill "$dir"
  if _chromium_port_open; then
    _chromium_log "port $CHROMIUM_HOST:$CHROMIUM_PORT is held by another program (set OFFBOARD_TEST_WEBDRIVER_PORT)"
    return 1
  fi
  chromedriver --port="$CHROMIUM_PORT" --allowed-ips="" --log-path="$dir/chromedriver.log" \
    >"$dir/stdout.log" 2>&1 &
  echo $! >"$dir/chromedriver.pid"
  for i in $(seq 1 101); do
    _chromium_port_open && break
    if [ "$i" = 101 ] || ! kill -0 "$(cat "$dir/chromedriver.pid")" 2>/dev/null; then
      _chromium_log "chromedriver did not start on $CHROMIUM_HOST:$CHROMIUM_PORT:"
      cat "$dir/stdout.log" "$dir/chromedriver.log" >&2 2>/dev/null || true
      return 1
    fi
    sleep 0.1
  done
  export OFFBOARD_TEST_WEBDRIVER="http://$CHROMIUM_HOST:$CHROMIUM_PORT"
  OFFBOARD_TEST_CHROMIUM="$(command -v chromium)"
  export OFFBOARD_TEST_CHROMIUM
  _chromium_log "chromedriver $(chromedriver --version | head -1) at $OFFBOARD_TEST_WEBDRIVER"
}

chromium_stop() {
  _chromium_kill "$OFFBOARD_TEST_DIR/chromium"
}
