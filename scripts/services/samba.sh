# Test service: a throwaway Samba AD domain controller (realm OFFB.TEST) on loopback.
#
# Sourced by scripts/test (set -euo pipefail). Defines `samba_start` and `samba_stop`.
# `samba_start` installs the Debian packages when missing, makes a CA and a server certificate,
# provisions the domain under $OFFBOARD_TEST_DIR/samba (once per directory), replaces a DC left
# running by an earlier run, starts samba in its own process group, waits for LDAPS on
# 127.0.0.1:636, seeds the test OUs and a service account, and exports:
#
#   OFFBOARD_TEST_AD_URL          ldaps://127.0.0.1:636
#   OFFBOARD_TEST_AD_BIND_DN      the service account's DN
#   OFFBOARD_TEST_AD_PASSWORD     the service account's password
#   OFFBOARD_TEST_AD_BASE_DN      DC=offb,DC=test
#   OFFBOARD_TEST_AD_CA_FILE      the CA that signed the DC's certificate
#   OFFBOARD_TEST_AD_DISABLED_OU  OU=Disabled Users,DC=offb,DC=test
#   OFFBOARD_TEST_AD_STAFF_OU     OU=Staff,DC=offb,DC=test (where tests create users)
#
# Needs root (samba binds ports 389/636/88 and one DC runs per network namespace).

SAMBA_PACKAGES=(samba samba-ad-dc samba-ad-provision winbind ldap-utils openssl)
SAMBA_BASE_DN="DC=offb,DC=test"

_samba_log() { echo "samba: $*" >&2; }

_samba_install() {
  local missing=() p
  for p in "${SAMBA_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$p")
    fi
  done
  if ((${#missing[@]})); then
    _samba_log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  # The packages' own units would hold the ports we need; the DC runs only under our control.
  local unit
  for unit in samba-ad-dc smbd nmbd winbind; do
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$unit" 2>/dev/null; then
      systemctl stop "$unit" || true
    fi
  done
}

_samba_certs() {
  local tls="$1"
  [ -s "$tls/server.crt" ] && [ -s "$tls/server.key" ] && [ -s "$tls/ca.crt" ] && return 0
  mkdir -p "$tls"
  (
    umask 077
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=offboard test CA" \
      -keyout "$tls/ca.key" -out "$tls/ca.crt" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
      2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
      -keyout "$tls/server.key" -out "$tls/server.csr" 2>/dev/null
    printf '%s\n' \
      "basicConstraints=CA:FALSE" \
      "keyUsage=critical,digitalSignature,keyEncipherment" \
      "extendedKeyUsage=serverAuth" \
      "subjectAltName=DNS:localhost,DNS:dc1.offb.test,IP:127.0.0.1,IP:::1" >"$tls/server.ext"
    openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.crt" -CAkey "$tls/ca.key" \
      -CAcreateserial -days 3650 -extfile "$tls/server.ext" -out "$tls/server.crt" 2>/dev/null
  )
  chmod 600 "$tls/server.key" "$tls/ca.key"
  chmod 644 "$tls/ca.crt" "$tls/server.crt"
}

_samba_port_busy() {
  # Anything listening on 127.0.0.1:636? (bash's /dev/tcp, no extra tools.)
  (exec 3<>/dev/tcp/127.0.0.1/636) 2>/dev/null
}

_samba_kill_pid() {
  local pid="$1" i
  [ -n "$pid" ] || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  # samba was started with setsid: its pid is its process group id.
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
}

# Prints the process group of the samba serving files under $1 (by its open file descriptors:
# samba rewrites its command line), or nothing.
_samba_find_pgid() {
  local dir="$1" proc
  for proc in /proc/[0-9]*; do
    [ "$(cat "$proc/comm" 2>/dev/null || true)" = samba ] || continue
    if ls -l "$proc/fd" 2>/dev/null | grep -qF "$dir/private/"; then
      awk '{print $5}' "$proc/stat" 2>/dev/null && return 0
    fi
  done
  return 0
}

_samba_stop_previous() {
  local dir="$1" f pid
  for f in "$dir/samba.pid" "$dir"/run/samba.pid; do
    [ -f "$f" ] || continue
    pid=$(tr -dc '0-9' <"$f")
    _samba_kill_pid "$pid"
    rm -f "$f"
  done
  if _samba_port_busy; then
    # A DC from an earlier run in another directory (its pid file is elsewhere): find samba
    # processes started by this script (samba rewrites its command line, so look at the files
    # it holds open: .../samba/private/*.ldb under a test dir, not /var/lib/samba) and stop
    # their process groups. /proc is scanned directly: a clean image may lack ss/fuser.
    local proc pgid
    for proc in /proc/[0-9]*; do
      [ "$(cat "$proc/comm" 2>/dev/null || true)" = samba ] || continue
      ls -l "$proc/fd" 2>/dev/null | grep -q '/samba/private/.*\.ldb' || continue
      ls -l "$proc/fd" 2>/dev/null | grep -q '/var/lib/samba/' && continue
      pgid=$(awk '{print $5}' "$proc/stat" 2>/dev/null || true)
      _samba_log "stopping samba (pid ${proc#/proc/}) left by an earlier run"
      _samba_kill_pid "${pgid:-${proc#/proc/}}"
    done
    local i
    for i in $(seq 1 50); do
      _samba_port_busy || break
      sleep 0.1
    done
    if _samba_port_busy; then
      _samba_log "port 636 on 127.0.0.1 is held by something that is not our samba"
      return 1
    fi
  fi
}

_samba_ldapmodify() {
  # $1: ldif on stdin; tolerate "already exists" (68) so seeding is idempotent.
  local out rc=0
  out=$(LDAPTLS_CACERT="$OFFBOARD_TEST_AD_CA_FILE" ldapmodify -x -H ldaps://127.0.0.1:636 \
    -D "Administrator@OFFB.TEST" -w "$SAMBA_ADMIN_PASSWORD" -c "$@" 2>&1) || rc=$?
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 68 ] && [ "$rc" -ne 20 ]; then
    echo "$out" >&2
    return "$rc"
  fi
}

samba_start() {
  local t0=$SECONDS
  local dir="$OFFBOARD_TEST_DIR/samba"
  mkdir -p "$dir"
  chmod 755 "$dir"
  SAMBA_ADMIN_PASSWORD='Adm1n!offboard-test'
  local svc_password='Svc!offboard-test-42'

  _samba_install
  _samba_certs "$dir/tls"
  _samba_stop_previous "$dir"

  if [ ! -f "$dir/etc/smb.conf" ] || [ ! -f "$dir/private/sam.ldb" ]; then
    _samba_log "provisioning OFFB.TEST in $dir"
    rm -rf "$dir/etc" "$dir/private" "$dir/state" "$dir/cache" "$dir/lock" "$dir/bind-dns"
    samba-tool domain provision --targetdir="$dir" --realm=OFFB.TEST --domain=OFFB \
      --server-role=dc --dns-backend=SAMBA_INTERNAL --adminpass="$SAMBA_ADMIN_PASSWORD" \
      --host-name=dc1 --host-ip=127.0.0.1 --option="interfaces=lo" \
      --option="bind interfaces only=yes" --option="server services=ldap cldap kdc" \
      >"$dir/provision.log" 2>&1 || {
      cat "$dir/provision.log" >&2
      return 1
    }
  fi

  _samba_log "starting the DC (log: $dir/samba.log)"
  setsid samba -s "$dir/etc/smb.conf" -i -M single \
    --option="tls enabled=yes" \
    --option="tls certfile=$dir/tls/server.crt" \
    --option="tls keyfile=$dir/tls/server.key" \
    --option="tls cafile=$dir/tls/ca.crt" \
    --option="ldap server require strong auth=yes" \
    --option="old password allowed period=0" \
    </dev/null >"$dir/samba.log" 2>&1 &
  # Without job control `setsid` execs samba in place, so $! is samba and leads its own
  # process group; with job control setsid forks, and the real group is looked up below.
  local pid=$!

  export OFFBOARD_TEST_AD_CA_FILE="$dir/tls/ca.crt"
  local i ok=0
  for i in $(seq 1 300); do
    if ! kill -0 "$pid" 2>/dev/null && [ -z "$(_samba_find_pgid "$dir")" ]; then
      break
    fi
    if LDAPTLS_CACERT="$OFFBOARD_TEST_AD_CA_FILE" timeout 5 ldapsearch -x -o nettimeout=2 \
      -H ldaps://127.0.0.1:636 \
      -D "Administrator@OFFB.TEST" -w "$SAMBA_ADMIN_PASSWORD" -b "$SAMBA_BASE_DN" -s base \
      dn >/dev/null 2>&1; then
      ok=1
      break
    fi
    sleep 0.2
  done
  if [ "$ok" -ne 1 ]; then
    _samba_log "LDAPS on 127.0.0.1:636 did not answer within 60 s; samba log follows"
    cat "$dir/samba.log" >&2
    _samba_kill_pid "$(_samba_find_pgid "$dir")"
    _samba_kill_pid "$pid"
    return 1
  fi
  local pgid
  pgid=$(_samba_find_pgid "$dir")
  SAMBA_PID=${pgid:-$pid}
  echo "$SAMBA_PID" >"$dir/samba.pid"

  local svc_dn="CN=offboard-svc,OU=Service Accounts,$SAMBA_BASE_DN"
  _samba_ldapmodify <<EOF
dn: OU=Staff,$SAMBA_BASE_DN
changetype: add
objectClass: organizationalUnit
ou: Staff

dn: OU=Disabled Users,$SAMBA_BASE_DN
changetype: add
objectClass: organizationalUnit
ou: Disabled Users

dn: OU=Service Accounts,$SAMBA_BASE_DN
changetype: add
objectClass: organizationalUnit
ou: Service Accounts
EOF
  if ! samba-tool user show offboard-svc -H "$dir/private/sam.ldb" >/dev/null 2>&1; then
    samba-tool user create offboard-svc "$svc_password" -H "$dir/private/sam.ldb" \
      --userou="OU=Service Accounts" >/dev/null
    samba-tool user setexpiry offboard-svc --noexpiry -H "$dir/private/sam.ldb" >/dev/null
  fi
  # The service account administers users in these tests (a real deployment delegates
  # narrower rights on the managed OUs).
  samba-tool group addmembers "Domain Admins" offboard-svc -H "$dir/private/sam.ldb" \
    >/dev/null 2>&1 || true

  export OFFBOARD_TEST_AD_URL="ldaps://127.0.0.1:636"
  export OFFBOARD_TEST_AD_BIND_DN="$svc_dn"
  export OFFBOARD_TEST_AD_PASSWORD="$svc_password"
  export OFFBOARD_TEST_AD_BASE_DN="$SAMBA_BASE_DN"
  export OFFBOARD_TEST_AD_DISABLED_OU="OU=Disabled Users,$SAMBA_BASE_DN"
  export OFFBOARD_TEST_AD_STAFF_OU="OU=Staff,$SAMBA_BASE_DN"
  _samba_log "ready in $((SECONDS - t0)) s"
}

samba_stop() {
  local dir="$OFFBOARD_TEST_DIR/samba" pid="${SAMBA_PID:-}"
  if [ -z "$pid" ] && [ -f "$dir/samba.pid" ]; then
    pid=$(tr -dc '0-9' <"$dir/samba.pid")
  fi
  _samba_kill_pid "$pid"
  rm -f "$dir/samba.pid"
}
