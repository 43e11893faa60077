# Test service: SMTP sinks (Python's aiosmtpd) on loopback that store every message they
# receive, one file per message, in one maildir.
#
# Sourced by scripts/test (set -euo pipefail). Defines `smtp_start` and `smtp_stop`.
# `smtp_start` installs the Debian packages python3-aiosmtpd (when /usr/bin/python3 cannot import
# aiosmtpd) and openssl (when missing), makes a test CA and a server certificate for 127.0.0.1,
# replaces sinks left running by an earlier run, starts three sinks in the background, waits
# until each answers, and exports:
#
#   OFFBOARD_TEST_SMTP            127.0.0.1:2525, plain SMTP (no TLS, no auth)
#   OFFBOARD_TEST_SMTP_STARTTLS   127.0.0.1:2526, STARTTLS required
#   OFFBOARD_TEST_SMTPS           127.0.0.1:2527, implicit TLS (SMTPS)
#   OFFBOARD_TEST_SMTP_CA_FILE    the CA (PEM) that signed the TLS sinks' certificate
#   OFFBOARD_TEST_SMTP_MAILDIR    the maildir the messages land in (<maildir>/new/*)
#
# Safe to run twice: the maildir is recreated and earlier sinks (found by their pid files, or
# by their ports when they are aiosmtpd) are stopped first.

SMTP_HOST=127.0.0.1
# name:port; the name is also the mode (plain | starttls | smtps).
SMTP_SINKS=(plain:2525 starttls:2526 smtps:2527)

_smtp_log() { echo "smtp: $*" >&2; }

# Whether something accepts connections on the port (for plain and STARTTLS: answers 220).
_smtp_port_open() {
  /usr/bin/python3 - "$SMTP_HOST" "$1" "$2" <<'PY' 2>/dev/null
import socket, sys
s = socket.socket()
s.settimeout(0.5)
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
    if sys.argv[3] != "smtps":
        sys.exit(0 if s.recv(64).startswith(b"220") else 1)
except OSError:
    sys.exit(1)
finally:
    s.close()
PY
}

_smtp_install() {
  local missing=()
  /usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null || missing+=(python3-aiosmtpd)
  command -v openssl >/dev/null 2>&1 || missing+=(openssl)
  ((${#missing[@]})) || return 0
  _smtp_log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Another service may be installing at the same time: wait for the dpkg lock.
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  /usr/bin/python3 -c 'import aiosmtpd' || {
    _smtp_log "python3-aiosmtpd installed but /usr/bin/python3 cannot import aiosmtpd"
    return 1
  }
}

_smtp_certs() {
  local tls="$1"
  [ -s "$tls/server.crt" ] && [ -s "$tls/server.key" ] && [ -s "$tls/ca.crt" ] && return 0
  mkdir -p "$tls"
  (
    umask 077
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=offboard smtp test CA" \
      -keyout "$tls/ca.key" -out "$tls/ca.crt" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
      2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
      -keyout "$tls/server.key" -out "$tls/server.csr" 2>/dev/null
    printf '%s\n' \
      "basicConstraints=CA:FALSE" \
      "keyUsage=critical,digitalSignature,keyEncipherment" \
      "extendedKeyUsage=serverAuth" \
      "subjectAltName=DNS:localhost,IP:127.0.0.1" >"$tls/server.ext"
    openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.crt" -CAkey "$tls/ca.key" \
      -CAcreateserial -days 3650 -extfile "$tls/server.ext" -out "$tls/server.crt" 2>/dev/null
  )
  chmod 644 "$tls/ca.crt" "$tls/server.crt"
}

# Stops a sink of ours: by pid file, else an aiosmtpd holding the port.
_smtp_kill() {
  local dir="$1" name="$2" port="$3" mode="$4" pid i
  if [ -s "$dir/$name.pid" ]; then
    pid=$(cat "$dir/$name.pid")
    if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q aiosmtpd; then
      kill "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/$name.pid"
  fi
  for i in $(seq 1 50); do
    _smtp_port_open "$port" "$mode" || return 0
    if [ "$i" = 1 ] && command -v fuser >/dev/null 2>&1; then
      for pid in $(fuser -n tcp "$port" 2>/dev/null); do
        if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q aiosmtpd; then
          _smtp_log "stopping an earlier aiosmtpd on port $port (pid $pid)"
          kill "$pid" 2>/dev/null || true
        fi
      done
    fi
    sleep 0.1
  done
  _smtp_log "port $SMTP_HOST:$port is held by another program"
  return 1
}

smtp_start() {
  local dir="$OFFBOARD_TEST_DIR/smtp" sink name port mode i
  mkdir -p "$dir"
  _smtp_install
  _smtp_certs "$dir/tls"
  for sink in "${SMTP_SINKS[@]}"; do
    name=${sink%%:*}
    port=${sink##*:}
    _smtp_kill "$dir" "$name" "$port" "$name"
  done
  rm -rf "$dir/maildir"
  # aiosmtpd's Mailbox makes tmp/new/cur only when the maildir itself is missing.
  mkdir -p "$dir/maildir/tmp" "$dir/maildir/new" "$dir/maildir/cur"
  for sink in "${SMTP_SINKS[@]}"; do
    name=${sink%%:*}
    port=${sink##*:}
    mode=$name
    local tls_args=()
    case "$mode" in
      starttls) tls_args=(--tlscert "$dir/tls/server.crt" --tlskey "$dir/tls/server.key") ;;
      smtps) tls_args=(--smtpscert "$dir/tls/server.crt" --smtpskey "$dir/tls/server.key") ;;
    esac
    /usr/bin/python3 -m aiosmtpd -n -l "$SMTP_HOST:$port" "${tls_args[@]}" \
      -c aiosmtpd.handlers.Mailbox "$dir/maildir" >"$dir/$name.log" 2>&1 &
    echo $! >"$dir/$name.pid"
  done
  for sink in "${SMTP_SINKS[@]}"; do
    name=${sink%%:*}
    port=${sink##*:}
    for i in $(seq 1 101); do
      _smtp_port_open "$port" "$name" && break
      if [ "$i" = 101 ] || ! kill -0 "$(cat "$dir/$name.pid")" 2>/dev/null; then
        _smtp_log "the $name sink did not start on $SMTP_HOST:$port:"
        cat "$dir/$name.log" >&2
        return 1
      fi
      sleep 0.1
    done
  done
  export OFFBOARD_TEST_SMTP="$SMTP_HOST:2525"
  export OFFBOARD_TEST_SMTP_STARTTLS="$SMTP_HOST:2526"
  export OFFBOARD_TEST_SMTPS="$SMTP_HOST:2527"
  export OFFBOARD_TEST_SMTP_CA_FILE="$dir/tls/ca.crt"
  export OFFBOARD_TEST_SMTP_MAILDIR="$dir/maildir"
  _smtp_log "plain $OFFBOARD_TEST_SMTP, STARTTLS $OFFBOARD_TEST_SMTP_STARTTLS, SMTPS $OFFBOARD_TEST_SMTPS; maildir $OFFBOARD_TEST_SMTP_MAILDIR"
}

smtp_stop() {
  local dir="$OFFBOARD_TEST_DIR/smtp" sink name pid i
  for sink in "${SMTP_SINKS[@]}"; do
    name=${sink%%:*}
    [ -s "$dir/$name.pid" ] || continue
    pid=$(cat "$dir/$name.pid")
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for i in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/$name.pid"
  done
}
