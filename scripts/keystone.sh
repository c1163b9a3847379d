#!/usr/bin/env bash
# OpenStack Keystone (identity v3, Keystone 22 from Debian 12's
# python3-keystone) for integration tests, in front of the Swift clusters of
# scripts/swift-clusters.sh (start those with SWIFT_KEYSTONE_URL).
#
#   keystone.sh DIR [start]   install if missing, configure into DIR (sqlite in
#                             WAL mode, fernet tokens), start Keystone, wait
#                             until GET /v3 answers, provision it, write
#                             DIR/env.sh. If DIR was provisioned before (and
#                             stopped), only start Keystone again: same
#                             database and keys, so earlier tokens stay valid.
#   keystone.sh DIR stop      kill the PID recorded in DIR/pids (its group)
#   keystone.sh DIR status    show the recorded PID, running or DEAD
#
# Provisioned (all in domain "default"):
#   user admin    (KEYSTONE_ADMIN_PASSWORD)    project admin: admin, ResellerAdmin
#   user swift    (KEYSTONE_SWIFT_PASSWORD)    project service: service
#                 (the proxies' authtoken user: validates tokens)
#   user warden   (KEYSTONE_WARDEN_PASSWORD)   project dr: member
#   user outsider (KEYSTONE_OUTSIDER_PASSWORD) project other: member (and
#                 nothing in dr: for "403 on someone else's account")
#   roles service, ResellerAdmin (bootstrap makes admin, member, reader)
#   application credential "warden-dr" of warden, project dr
#   a region and an object-store ("swift") endpoint per KEYSTONE_REGIONS
#   item: public + internal PROXY_URL/v1/AUTH_%(project_id)s, admin
#   PROXY_URL/v1; identity endpoints in RegionOne
#
# DIR/env.sh (plain KEY=value lines): KEYSTONE_URL (http://IP:PORT/v3),
# KEYSTONE_DR_PROJECT_ID, KEYSTONE_OTHER_PROJECT_ID, KEYSTONE_APP_CRED_ID,
# KEYSTONE_APP_CRED_SECRET, KEYSTONE_ADMIN_PASSWORD, KEYSTONE_SWIFT_PASSWORD,
# KEYSTONE_WARDEN_PASSWORD, KEYSTONE_OUTSIDER_PASSWORD, KEYSTONE_NETNS.
#
# Environment overrides (defaults in brackets); read at the first start, then
# kept in DIR/state:
#   KEYSTONE_IP [127.0.0.1]   KEYSTONE_PORT [25000]
#   KEYSTONE_NETNS [none]     existing network namespace (ip netns add) with
#                             KEYSTONE_IP in it; Keystone runs there
#   KEYSTONE_REGIONS ["a=http://127.0.0.1:8080 b=http://127.0.0.1:9080"]
#                             space-separated REGION=PROXY_URL items
#   KEYSTONE_ADMIN_PASSWORD [admin-secret]
#   KEYSTONE_SWIFT_PASSWORD [swift-secret]
#   KEYSTONE_WARDEN_PASSWORD [warden-secret]
#   KEYSTONE_OUTSIDER_PASSWORD [outsider-secret]
#   KEYSTONE_TOKEN_EXPIRATION [3600]  token lifetime, seconds
#   KEYSTONE_START_TIMEOUT [60]       seconds to wait for GET /v3
# Everything lives under DIR (config, keys, database, log in DIR/log);
# nothing is written to /etc/keystone. Run as root.
set -euo pipefail
set +m   # no job control: "setsid cmd &" then runs cmd in this very PID

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[ $# -ge 1 ] || usage
DIR=$1
MODE=${2:-start}
case "$DIR" in /*) ;; *) DIR="$(pwd)/$DIR" ;; esac

KS_IP=${KEYSTONE_IP:-127.0.0.1}
KS_PORT=${KEYSTONE_PORT:-25000}
KS_NETNS=${KEYSTONE_NETNS:-}
REGIONS=${KEYSTONE_REGIONS:-a=http://127.0.0.1:8080 b=http://127.0.0.1:9080}
ADMIN_PW=${KEYSTONE_ADMIN_PASSWORD:-admin-secret}
SWIFT_PW=${KEYSTONE_SWIFT_PASSWORD:-swift-secret}
WARDEN_PW=${KEYSTONE_WARDEN_PASSWORD:-warden-secret}
OUTSIDER_PW=${KEYSTONE_OUTSIDER_PASSWORD:-outsider-secret}
EXPIRATION=${KEYSTONE_TOKEN_EXPIRATION:-3600}
START_TIMEOUT=${KEYSTONE_START_TIMEOUT:-60}
PIDS="$DIR/pids"
STATE="$DIR/state"   # settings resolved at the first start; reused afterwards
if [ -f "$STATE" ]; then
  # shellcheck disable=SC1090
  . "$STATE"
fi
KC="$DIR/keystone.conf"
LOG="$DIR/log/keystone.log"
MLOG="$DIR/log/keystone-manage.log"
PY=/usr/bin/python3   # Debian's python (has sqlite3); not a pyenv shim

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
ks_url() { printf 'http://%s:%s' "$KS_IP" "$KS_PORT"; }
in_ns() { if [ -n "$KS_NETNS" ]; then ip netns exec "$KS_NETNS" "$@"; else "$@"; fi; }

# process start time (clock ticks since boot): recorded with the PID so that
# stop/status never signal an unrelated process that reused a stale PID
pid_start() { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $20}'; }
pid_alive() {   # PID [STARTTIME]; a zombie counts as dead
  [ -n "$1" ] && kill -0 "$1" 2>/dev/null || return 1
  [ "$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" != Z ] || return 1
  [ -z "${2:-}" ] || [ "$(pid_start "$1")" = "$2" ]
}

# ----------------------------------------------------------------- install
install_if_missing() {
  local need=0 b
  for b in keystone-manage keystone-wsgi-public jq curl; do
    command -v "$b" >/dev/null 2>&1 || need=1
  done
  "$PY" -c 'import keystonemiddleware' 2>/dev/null || need=1
  [ $need = 0 ] && return 0
  [ "$(id -u)" = 0 ] || die "Keystone packages missing and not root"
  log "installing Keystone packages (apt-get)"
  local t0=$SECONDS
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  # python3-keystone, not keystone: same binaries, but no debconf questions,
  # no keystone user, no /etc/keystone, no init script
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends \
    python3-keystone python3-keystonemiddleware jq curl >/dev/null
  log "installed in $((SECONDS - t0)) s"
}

# ----------------------------------------------------------------- server
spawn_keystone() {
  if [ -n "$KS_NETNS" ]; then
    [ -e "/run/netns/$KS_NETNS" ] || die "network namespace $KS_NETNS does not exist"
    ip netns exec "$KS_NETNS" ip link set lo up
  fi
  # keystone-wsgi-public's own __main__: wsgiref, one request at a time,
  # oslo.config arguments after "--"
  if [ -n "$KS_NETNS" ]; then
    PYTHONWARNINGS=ignore setsid ip netns exec "$KS_NETNS" keystone-wsgi-public \
      --host "$KS_IP" --port "$KS_PORT" -- --config-file "$KC" </dev/null >>"$LOG" 2>&1 &
  else
    PYTHONWARNINGS=ignore setsid keystone-wsgi-public \
      --host "$KS_IP" --port "$KS_PORT" -- --config-file "$KC" </dev/null >>"$LOG" 2>&1 &
  fi
  echo "keystone $! $(pid_start $!)" > "$PIDS"
}

wait_keystone() {
  local deadline=$((SECONDS + START_TIMEOUT)) p st
  read -r _ p st < "$PIDS"
  until [ "$(in_ns curl -s -o /dev/null -w '%{http_code}' "$(ks_url)/v3" || true)" = 200 ]; do
    pid_alive "$p" "$st" || die "keystone exited (see $LOG)"
    [ $SECONDS -lt $deadline ] || die "timeout waiting for $(ks_url)/v3 (see $LOG)"
    sleep 0.1
  done
}

# ----------------------------------------------------------------- setup
write_conf() {
  mkdir -p "$DIR/fernet-keys" "$DIR/credential-keys" "$DIR/log"
  # or every token request logs "key_repository is world readable"
  chmod 700 "$DIR/fernet-keys" "$DIR/credential-keys"
  cat > "$KC" <<EOF
[DEFAULT]
# no log_file: Keystone logs to stderr, i.e. $LOG

[database]
connection = sqlite:///$DIR/keystone.db

[token]
provider = fernet
expiration = $EXPIRATION

[fernet_tokens]
key_repository = $DIR/fernet-keys

[fernet_receipts]
# fernet_setup initialises this one too; its default is /etc/keystone/fernet-keys
key_repository = $DIR/fernet-keys

[credential]
key_repository = $DIR/credential-keys

[identity]
# bcrypt cost 4 instead of 12 (test only): password checks 1 ms, not 0.2 s
password_hash_rounds = 4
EOF
}

km() { keystone-manage --config-file "$KC" "$@" >>"$MLOG" 2>&1 || die "keystone-manage $1 failed (see $MLOG)"; }

setup_db() {
  km db_sync
  # WAL: with the default rollback journal a token validation leaves a read
  # transaction open and the next write fails with "database is locked"
  "$PY" -c 'import sqlite3, sys; sqlite3.connect(sys.argv[1]).execute("PRAGMA journal_mode=WAL")' \
    "$DIR/keystone.db"
  km fernet_setup     --keystone-user root --keystone-group root
  km credential_setup --keystone-user root --keystone-group root
  km bootstrap --bootstrap-password "$ADMIN_PW" \
    --bootstrap-username admin --bootstrap-project-name admin \
    --bootstrap-role-name admin --bootstrap-service-name keystone \
    --bootstrap-region-id RegionOne \
    --bootstrap-public-url "$(ks_url)/v3" --bootstrap-internal-url "$(ks_url)/v3" \
    --bootstrap-admin-url "$(ks_url)/v3"
}

# ----------------------------------------------------------------- provision
password_auth() {  # USER PASSWORD PROJECT -> JSON body for POST /v3/auth/tokens
  jq -nc --arg u "$1" --arg p "$2" --arg pr "$3" '{auth: {
    identity: {methods: ["password"], password: {user: {name: $u, domain: {id: "default"}, password: $p}}},
    scope: {project: {name: $pr, domain: {id: "default"}}}}}'
}
token() {  # JSON_BODY -> prints X-Subject-Token; body in $DIR/token.json
  in_ns curl -sS -D "$DIR/token.hdr" -o "$DIR/token.json" -H 'Content-Type: application/json' \
    -d "$1" "$(ks_url)/v3/auth/tokens"
  tr -d '\r' < "$DIR/token.hdr" | awk -F': ' 'tolower($1)=="x-subject-token"{print $2}'
}
ks() {  # METHOD PATH [JSON] -> response body, as admin; fails on HTTP errors
  in_ns curl -sS --fail-with-body -X "$1" -H "X-Auth-Token: $ADMIN_TOKEN" \
    -H 'Content-Type: application/json' ${3:+-d "$3"} "$(ks_url)/v3$2"
}
mkproject() { ks POST /projects "$(jq -nc --arg n "$1" '{project: {name: $n, domain_id: "default"}}')" | jq -er .project.id; }
mkrole()    { ks POST /roles "$(jq -nc --arg n "$1" '{role: {name: $n}}')" | jq -er .role.id; }
mkuser()    { ks POST /users "$(jq -nc --arg n "$1" --arg p "$2" --arg pr "$3" \
                '{user: {name: $n, password: $p, domain_id: "default", default_project_id: $pr}}')" | jq -er .user.id; }
roleid()    { ks GET "/roles?name=$1" | jq -er '.roles[0].id'; }
grant()     { ks PUT "/projects/$1/users/$2/roles/$3" >/dev/null; }   # project user role

provision() {
  ADMIN_TOKEN=$(token "$(password_auth admin "$ADMIN_PW" admin)")
  [ -n "$ADMIN_TOKEN" ] || die "no admin token: $(cat "$DIR/token.json")"
  local admin_project admin_user service_project dr_project other_project
  local member_role service_role reseller_role swift_user warden_user outsider_user
  admin_project=$(jq -er .token.project.id "$DIR/token.json")
  admin_user=$(jq -er .token.user.id "$DIR/token.json")

  service_project=$(mkproject service)
  dr_project=$(mkproject dr)
  other_project=$(mkproject other)
  member_role=$(roleid member)            # bootstrap made admin, member, reader
  service_role=$(mkrole service)          # not made by bootstrap in 22
  reseller_role=$(mkrole ResellerAdmin)
  swift_user=$(mkuser swift "$SWIFT_PW" "$service_project")
  warden_user=$(mkuser warden "$WARDEN_PW" "$dr_project")
  outsider_user=$(mkuser outsider "$OUTSIDER_PW" "$other_project")
  grant "$service_project" "$swift_user" "$service_role"      # may validate tokens
  grant "$dr_project" "$warden_user" "$member_role"           # a Swift operator role
  grant "$other_project" "$outsider_user" "$member_role"
  grant "$admin_project" "$admin_user" "$reseller_role"       # may use every account

  local svc item region url i
  svc=$(ks POST /services '{"service":{"type":"object-store","name":"swift"}}' | jq -er .service.id)
  for item in $REGIONS; do
    region=${item%%=*}; url=${item#*=}; url=${url%/}
    [ -n "$region" ] && [ "$region" != "$item" ] && [ -n "$url" ] \
      || die "bad KEYSTONE_REGIONS item '$item' (want REGION=PROXY_URL)"
    ks POST /regions "$(jq -nc --arg r "$region" '{region: {id: $r}}')" >/dev/null
    for i in public internal admin; do
      local u="$url/v1/AUTH_%(project_id)s"
      [ $i = admin ] && u="$url/v1"
      ks POST /endpoints "$(jq -nc --arg s "$svc" --arg r "$region" --arg i "$i" --arg u "$u" \
        '{endpoint: {service_id: $s, region_id: $r, interface: $i, url: $u}}')" >/dev/null
    done
  done

  # application credential: made by warden himself with his dr-scoped token
  # (the secret is only in this answer)
  local wtoken ac ac_id ac_secret
  wtoken=$(token "$(password_auth warden "$WARDEN_PW" dr)")
  [ -n "$wtoken" ] || die "no warden token: $(cat "$DIR/token.json")"
  ac=$(in_ns curl -sS --fail-with-body -H "X-Auth-Token: $wtoken" -H 'Content-Type: application/json' \
    -d '{"application_credential":{"name":"warden-dr","description":"warden DR tests"}}' \
    "$(ks_url)/v3/users/$warden_user/application_credentials")
  ac_id=$(jq -er .application_credential.id <<<"$ac")
  ac_secret=$(jq -er .application_credential.secret <<<"$ac")
  rm -f "$DIR/token.hdr" "$DIR/token.json"

  cat > "$DIR/env.sh.tmp" <<EOF
KEYSTONE_URL=$(ks_url)/v3
KEYSTONE_DR_PROJECT_ID=$dr_project
KEYSTONE_OTHER_PROJECT_ID=$other_project
KEYSTONE_APP_CRED_ID=$ac_id
KEYSTONE_APP_CRED_SECRET=$ac_secret
KEYSTONE_ADMIN_PASSWORD=$ADMIN_PW
KEYSTONE_SWIFT_PASSWORD=$SWIFT_PW
KEYSTONE_WARDEN_PASSWORD=$WARDEN_PW
KEYSTONE_OUTSIDER_PASSWORD=$OUTSIDER_PW
KEYSTONE_NETNS=$KS_NETNS
EOF
  chmod 600 "$DIR/env.sh.tmp"
  mv "$DIR/env.sh.tmp" "$DIR/env.sh"   # appears complete or not at all
}

# ----------------------------------------------------------------- start
on_start_exit() {
  local rc=$?
  [ $rc = 0 ] && return 0
  log "start failed; last lines of the logs:"
  local f
  for f in "$MLOG" "$LOG"; do
    [ -s "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }
  done
  do_stop || true
}

do_start() {
  [ "$(id -u)" = 0 ] || die "must run as root"
  if [ -s "$PIDS" ]; then
    local n p st
    read -r n p st < "$PIDS"
    ! pid_alive "$p" "$st" || die "already running (pid $p); run '$0 $DIR stop' first"
    rm -f "$PIDS"
  fi
  install_if_missing
  local t0; t0=$(date +%s.%N)
  trap on_start_exit EXIT
  if [ -f "$DIR/env.sh" ] && [ -f "$DIR/keystone.db" ] && [ -f "$KC" ]; then
    # provisioned before: same database, keys and config
    mkdir -p "$DIR/log"
    spawn_keystone
    wait_keystone
    trap - EXIT
    log "$(awk "BEGIN{printf \"keystone restarted on $(ks_url)/v3 in %.1f s\", $(date +%s.%N) - $t0}")"
    return 0
  fi
  [ ! -e "$DIR" ] || [ -z "$(ls -A "$DIR")" ] || die "$DIR is not empty and not a provisioned keystone dir"
  mkdir -p "$DIR/log"
  chmod 700 "$DIR"
  : > "$STATE"
  local var
  for var in KS_IP KS_PORT KS_NETNS REGIONS ADMIN_PW SWIFT_PW WARDEN_PW OUTSIDER_PW EXPIRATION START_TIMEOUT; do
    printf '%s=%q\n' "$var" "${!var}" >> "$STATE"
  done
  write_conf
  setup_db
  local t1; t1=$(date +%s.%N)
  spawn_keystone
  wait_keystone
  local t2; t2=$(date +%s.%N)
  provision
  local t3; t3=$(date +%s.%N)
  trap - EXIT
  log "$(awk "BEGIN{printf \"db + keys + bootstrap %.1f s, up %.1f s after spawn, provisioned in %.1f s; total %.1f s\", $t1 - $t0, $t2 - $t1, $t3 - $t2, $t3 - $t0}")"
  echo "keystone: $(ks_url)/v3${KS_NETNS:+  (netns $KS_NETNS)}; regions: $REGIONS; env in $DIR/env.sh"
}

# ----------------------------------------------------------------- stop
# keystone-wsgi-public was started under setsid: it leads its own process
# group (id = its PID). members PID STARTTIME prints the PIDs to signal.
members() {
  local p=$1 st=$2
  if [ -n "$st" ] && kill -0 "$p" 2>/dev/null && [ "$(pid_start "$p")" != "$st" ]; then
    return 0   # PID reused by another process: not ours
  fi
  ps -eo pid=,pgid=,stat= | awk -v g="$p" '$2 == g && $3 !~ /^Z/ {print $1}'
}

do_stop() {
  [ -f "$PIDS" ] || { log "nothing recorded in $PIDS"; return 0; }
  local n p st m sig deadline
  read -r n p st < "$PIDS" || true
  for sig in TERM KILL; do
    for m in $(members "$p" "$st"); do
      [ $sig = TERM ] || log "$n: sending SIGKILL to $m"
      kill -"$sig" "$m" 2>/dev/null || true
    done
    [ $sig = KILL ] && break
    deadline=$((SECONDS + 10))
    while [ $SECONDS -lt $deadline ] && [ -n "$(members "$p" "$st")" ]; do
      sleep 0.2
    done
  done
  rm -f "$PIDS"
  log "stopped"
}

do_status() {
  [ -f "$PIDS" ] || { echo "not running"; return 1; }
  local n p st
  read -r n p st < "$PIDS"
  if pid_alive "$p" "$st"; then echo "$n $p running $(ks_url)/v3"; else echo "$n $p DEAD"; return 1; fi
}

case "$MODE" in
  start)  do_start ;;
  stop)   do_stop ;;
  status) do_status ;;
  *) usage ;;
esac
