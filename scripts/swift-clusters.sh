#!/usr/bin/env bash
# Two independent OpenStack Swift "all in one" clusters (A and B) on one
# machine, from Debian 12's packages, for integration tests.
#
#   swift-clusters.sh DIR [start]   install if missing, configure into DIR,
#                                       start both clusters, wait until healthy,
#                                       print auth URLs, write DIR/env.sh
#   swift-clusters.sh DIR stop      kill every PID recorded in DIR/pids
#   swift-clusters.sh DIR stop a|b  stop one cluster (a site failure)
#   swift-clusters.sh DIR start a|b start it again (same config and data)
#   swift-clusters.sh DIR status    show recorded PIDs, running or DEAD
#   swift-clusters.sh DIR check     smoke test: auth on both, PUT/GET/JSON
#                                       listing on A, container sync A -> B
#                                       (prints the lag)
#
# Each cluster: memcached, account/container/object servers (one device, one
# replica, plain directory, mount_check = false), a proxy with tempauth and
# healthcheck, the container-sync daemon (and optionally the
# container-updater). Every process runs in the background as root, with its
# PID in DIR/pids and its log in DIR/<cluster>/log/. Run as root.
#
# Environment overrides (defaults in brackets):
#   SWIFT_A_IP [127.0.0.1]  SWIFT_A_PROXY_PORT [8080]  SWIFT_A_PORT_BASE [6200]
#   SWIFT_A_MEMCACHED_PORT [11211]  SWIFT_A_NETNS [none]
#   SWIFT_B_IP [127.0.0.1]  SWIFT_B_PROXY_PORT [9080]  SWIFT_B_PORT_BASE [6210]
#   SWIFT_B_MEMCACHED_PORT [11212]  SWIFT_B_NETNS [none]
#   (object = PORT_BASE, container = PORT_BASE+1, account = PORT_BASE+2)
#   SWIFT_WORKERS [1]            workers per WSGI server (0 = no fork)
#   SWIFT_SYNC_INTERVAL [2]      container-sync scan interval, seconds
#   SWIFT_UPDATER_INTERVAL [0]   container-updater interval, seconds; 0 = do
#                                not run it (account stats then stay stale;
#                                refresh with swift-container-updater CONF once)
#   SWIFT_REALM_KEY [realm1key]  shared realm key in container-sync-realms.conf
#   SWIFT_START_TIMEOUT [60]     seconds to wait for health
#   SWIFT_KEYSTONE_URL [none]    Keystone mode: e.g. http://127.0.0.1:25000/v3
#                                (scripts/keystone.sh); the proxies then use
#                                authtoken + keystoneauth instead of tempauth
#                                (accounts AUTH_<project id>, operator roles
#                                admin and member, ResellerAdmin)
#   SWIFT_KEYSTONE_SWIFT_PASSWORD [swift-secret]  password of Keystone user
#                                "swift" (project service) that validates tokens
#   SWIFT_TOKEN_CACHE_TIME [300] seconds a proxy trusts a validated token
#                                without asking Keystone (-1: no caching)
# The auth mode and the settings above are kept in DIR/state: "start a|b",
# "stop", "check" reuse them. DIR/env.sh has SWIFT_A_PROXY_URL and
# SWIFT_B_PROXY_URL (http://IP:PORT) and SWIFT_AUTH (tempauth or keystone) in
# both modes; the tempauth keys (SWIFT_A_AUTH_URL, SWIFT_A_STORAGE_URL,
# SWIFT_USER, SWIFT_KEY, ...) only in tempauth mode, SWIFT_KEYSTONE_URL only
# in keystone mode. In keystone mode "check" only checks health and that a
# request without a token gets 401 (it has no Keystone user of its own).
# SWIFT_X_NETNS names an existing network namespace (made by the caller with
# `ip netns add`, with SWIFT_X_IP configured inside it and routable from the
# other namespace); the cluster's processes are then started in it with
# `ip netns exec`, memcached listens on the namespace's own loopback.
# A_BASE, A_MC, ... are read indirectly through v():
# shellcheck disable=SC2034
set -euo pipefail
set +m   # no job control: "setsid cmd &" then runs cmd in this very PID

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[ $# -ge 1 ] || usage
DIR=$1
MODE=${2:-start}
ONLY=${3:-}   # a or b: act on one cluster
case "$ONLY" in ""|a|b) ;; *) echo "cluster must be a or b" >&2; exit 2 ;; esac
case "$DIR" in /*) ;; *) DIR="$(pwd)/$DIR" ;; esac

A_IP=${SWIFT_A_IP:-127.0.0.1};        B_IP=${SWIFT_B_IP:-127.0.0.1}
A_PROXY=${SWIFT_A_PROXY_PORT:-8080};  B_PROXY=${SWIFT_B_PROXY_PORT:-9080}
A_BASE=${SWIFT_A_PORT_BASE:-6200};    B_BASE=${SWIFT_B_PORT_BASE:-6210}
A_MC=${SWIFT_A_MEMCACHED_PORT:-11211}; B_MC=${SWIFT_B_MEMCACHED_PORT:-11212}
A_NETNS=${SWIFT_A_NETNS:-};           B_NETNS=${SWIFT_B_NETNS:-}
WORKERS=${SWIFT_WORKERS:-1}
SYNC_INTERVAL=${SWIFT_SYNC_INTERVAL:-2}
UPDATER_INTERVAL=${SWIFT_UPDATER_INTERVAL:-0}
REALM_KEY=${SWIFT_REALM_KEY:-realm1key}
START_TIMEOUT=${SWIFT_START_TIMEOUT:-60}
KS_URL=${SWIFT_KEYSTONE_URL:-}        # empty: tempauth mode
KS_URL=${KS_URL%/}
KS_SWIFT_PW=${SWIFT_KEYSTONE_SWIFT_PASSWORD:-swift-secret}
TOKEN_CACHE_TIME=${SWIFT_TOKEN_CACHE_TIME:-300}
PIDS="$DIR/pids"
STATE="$DIR/state"   # settings resolved at start; reused by stop/status/check
if { [ "$MODE" != start ] || [ -n "$ONLY" ]; } && [ -f "$STATE" ]; then
  # shellcheck disable=SC1090
  . "$STATE"
fi
PY=/usr/bin/python3   # Debian's python (has python3-requests); not a pyenv shim

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# cluster variable lookup: v A IP -> value of A_IP
v() { local n="${1}_${2}"; printf '%s' "${!n}"; }
# run a command in the cluster's namespace (or here)
in_ns() { local ns; ns=$(v "$1" NETNS); shift
  if [ -n "$ns" ]; then ip netns exec "$ns" "$@"; else "$@"; fi; }

# process start time (clock ticks since boot): recorded with each PID so that
# stop/status never signal an unrelated process that reused a stale PID
pid_start() { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $20}'; }
# pid_alive PID [STARTTIME]
pid_alive() {   # a zombie (state Z: exited, not yet reaped) counts as dead
  [ -n "$1" ] && kill -0 "$1" 2>/dev/null || return 1
  [ "$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" != Z ] || return 1
  [ -z "${2:-}" ] || [ "$(pid_start "$1")" = "$2" ]
}

# ----------------------------------------------------------------- install
install_if_missing() {
  local need=0 b
  for b in swift-proxy-server swift-account-server swift-container-server \
           swift-object-server swift-container-sync swift-ring-builder \
           swift memcached curl; do
    command -v "$b" >/dev/null 2>&1 || need=1
  done
  [ -x "$PY" ] && "$PY" -c 'import requests' 2>/dev/null || need=1
  local extra=
  if [ -n "$KS_URL" ] && ! "$PY" -c 'import keystonemiddleware' 2>/dev/null; then
    need=1; extra=python3-keystonemiddleware   # authtoken filter
  fi
  [ $need = 0 ] && return 0
  [ "$(id -u)" = 0 ] || die "Swift packages missing and not root"
  log "installing Swift packages (apt-get)"
  local t0=$SECONDS
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  # --no-install-recommends: 72 packages instead of ~170 (recommends pull
  # autopkgtest, gtk, gnome-keyring, keystonemiddleware...)
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends \
    swift swift-proxy swift-account swift-container swift-object \
    python3-swiftclient python3-requests memcached curl $extra >/dev/null
  log "installed in $((SECONDS - t0)) s"
}

# ----------------------------------------------------------------- config
write_swift_conf() {
  # Swift reads /etc/swift/swift.conf unconditionally (swift_dir moves rings
  # and the other configs, not this file), so both clusters share it. The
  # packaged file (prefix/suffix "changeme", one policy) is fine; only write
  # one if it is missing or lacks the hash settings.
  if ! grep -Eqs '^\s*swift_hash_path_(suffix|prefix)\s*=\s*\S' /etc/swift/swift.conf; then
    mkdir -p /etc/swift
    cat > /etc/swift/swift.conf <<'EOF'
[swift-hash]
swift_hash_path_suffix = saio-test-suffix
swift_hash_path_prefix = saio-test-prefix

[storage-policy:0]
name = Policy-0
default = yes

[swift-constraints]
EOF
  fi
  cp /etc/swift/swift.conf "$DIR/swift.conf.used"
}

write_cluster() {  # $1 = A or B
  local c=$1 lc; lc=${1,,}
  local d="$DIR/$lc" ip proxy base mc
  ip=$(v "$c" IP); proxy=$(v "$c" PROXY); base=$(v "$c" BASE); mc=$(v "$c" MC)
  local obj=$base cont=$((base + 1)) acct=$((base + 2))
  mkdir -p "$d/etc" "$d/srv/d1" "$d/log" "$d/cache"

  local auth auth_filters
  if [ -z "$KS_URL" ]; then
    auth=tempauth
    auth_filters="[filter:tempauth]
use = egg:swift#tempauth
user_admin_admin = admin .admin .reseller_admin
user_test_tester = testing .admin
user_test_tester2 = testing2
user_test2_tester2 = testing2 .admin
# a key long enough for a warden config (secrets of 8 characters or more)
user_test_warden = warden-testing .admin
token_life = 86400"
  else
    auth="authtoken keystoneauth"
    auth_filters="[filter:authtoken]
paste.filter_factory = keystonemiddleware.auth_token:filter_factory
www_authenticate_uri = $KS_URL
auth_url = ${KS_URL%/v3}
auth_type = password
username = swift
password = $KS_SWIFT_PW
project_name = service
user_domain_id = default
project_domain_id = default
interface = public
# keystoneauth decides (401 for bad or missing tokens; tempurl, public
# containers and container sync keep working)
delay_auth_decision = True
# validated tokens are kept in this cluster's memcached and trusted for
# token_cache_time seconds, even if revoked meanwhile
cache = swift.cache
token_cache_time = $TOKEN_CACHE_TIME
include_service_catalog = False
# silences a deprecation warning at start
service_token_roles_required = True

[filter:keystoneauth]
use = egg:swift#keystoneauth
operator_roles = admin, member
reseller_admin_role = ResellerAdmin
reseller_prefix = AUTH_"
  fi
  cat > "$d/etc/proxy-server.conf" <<EOF
[DEFAULT]
bind_ip = $ip
bind_port = $proxy
workers = $WORKERS
user = root
swift_dir = $d/etc
log_name = proxy-$lc
log_level = INFO

[pipeline:main]
# container_sync must come before tempauth (or authtoken): it authenticates the
# signed requests that another cluster's container-sync daemon sends
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats container_sync bulk tempurl ratelimit $auth copy container-quotas account-quotas slo dlo versioned_writes symlink proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
allow_account_management = true
# a storage server that failed (507, refused, timeout) is skipped for this many
# seconds; with the default 60 a one-replica cluster answers 503 for a minute
# after the server is back
error_suppression_interval = 1

$auth_filters

[filter:healthcheck]
use = egg:swift#healthcheck

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$mc
# same for memcached (tempauth tokens live there)
error_suppression_interval = 1

[filter:container_sync]
use = egg:swift#container_sync
current = //realm1/cluster$lc

[filter:catch_errors]
use = egg:swift#catch_errors

[filter:gatekeeper]
use = egg:swift#gatekeeper

[filter:proxy-logging]
use = egg:swift#proxy_logging

[filter:listing_formats]
use = egg:swift#listing_formats

[filter:bulk]
use = egg:swift#bulk

[filter:tempurl]
use = egg:swift#tempurl
# the default also allows sha1 and logs a deprecation notice at start
allowed_digests = sha256 sha512

[filter:ratelimit]
use = egg:swift#ratelimit

[filter:copy]
use = egg:swift#copy

[filter:container-quotas]
use = egg:swift#container_quotas

[filter:account-quotas]
use = egg:swift#account_quotas

[filter:slo]
use = egg:swift#slo

[filter:dlo]
use = egg:swift#dlo

[filter:versioned_writes]
use = egg:swift#versioned_writes
allow_versioned_writes = true

[filter:symlink]
use = egg:swift#symlink
EOF

  local kind port app_extra sync_hosts=$A_IP
  [ "$B_IP" = "$A_IP" ] || sync_hosts="$A_IP,$B_IP"
  for kind in account container object; do
    app_extra=
    case $kind in
      account) port=$acct;;
      container) port=$cont
        # hosts allowed in old-style full-URL X-Container-Sync-To values
        app_extra="
allowed_sync_hosts = $sync_hosts";;
      object) port=$obj;;
    esac
    cat > "$d/etc/$kind-server.conf" <<EOF
[DEFAULT]
devices = $d/srv
mount_check = false
disable_fallocate = true
bind_ip = $ip
bind_port = $port
workers = $WORKERS
user = root
swift_dir = $d/etc
recon_cache_path = $d/cache
log_name = $kind-$lc
log_level = INFO

[pipeline:main]
pipeline = healthcheck recon $kind-server

[app:$kind-server]
use = egg:swift#$kind$app_extra

[filter:healthcheck]
use = egg:swift#healthcheck

[filter:recon]
use = egg:swift#recon
EOF
  done
  cat >> "$d/etc/container-server.conf" <<EOF

[container-updater]
# forks one child per container partition per sweep: keep concurrency low
interval = $([ "$UPDATER_INTERVAL" = 0 ] && echo 300 || echo "$UPDATER_INTERVAL")
concurrency = 1

[container-sync]
interval = $SYNC_INTERVAL
container_time = 60
allowed_sync_hosts = $sync_hosts
internal_client_conf_path = $d/etc/internal-client.conf
EOF

  # internal client used by container-sync to read the local cluster; without
  # swift_dir it would look for rings in /etc/swift
  cat > "$d/etc/internal-client.conf" <<EOF
[DEFAULT]
swift_dir = $d/etc
user = root
log_name = internal-client-$lc

[pipeline:main]
pipeline = catch_errors proxy-logging cache symlink proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
error_suppression_interval = 1

[filter:symlink]
use = egg:swift#symlink

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$mc
error_suppression_interval = 1

[filter:proxy-logging]
use = egg:swift#proxy_logging

[filter:catch_errors]
use = egg:swift#catch_errors
EOF

  # same realm file on both clusters: sync works in both directions
  cat > "$d/etc/container-sync-realms.conf" <<EOF
[DEFAULT]
mtime_check_interval = 300

[realm1]
key = $REALM_KEY
cluster_clustera = http://$A_IP:$A_PROXY/v1/
cluster_clusterb = http://$B_IP:$B_PROXY/v1/
EOF

  # rings: part power 10, 1 replica, min_part_hours 1, one device "d1".
  # Same result as, in $d/etc, for each of account/container/object:
  #   swift-ring-builder X.builder create 10 1 1
  #   swift-ring-builder X.builder add r1z1-IP:PORT/d1 100
  #   swift-ring-builder X.builder rebalance
  # but in one python process (0.5 s instead of ~4 s per cluster).
  if [ ! -f "$d/etc/object.ring.gz" ]; then
    "$PY" - "$d/etc" "$ip" "$acct" "$cont" "$obj" <<'EOF' || die "ring build failed for $lc"
import sys
from swift.common.ring import RingBuilder
etc, ip, ports = sys.argv[1], sys.argv[2], sys.argv[3:6]
for name, port in zip(('account', 'container', 'object'), ports):
    b = RingBuilder(10, 1, 1)
    b.add_dev({'region': 1, 'zone': 1, 'ip': ip, 'port': int(port),
               'replication_ip': ip, 'replication_port': int(port),
               'device': 'd1', 'weight': 100, 'meta': ''})
    b.rebalance()
    b.save('%s/%s.builder' % (etc, name))
    b.get_ring().save('%s/%s.ring.gz' % (etc, name))
EOF
  fi
}

# ----------------------------------------------------------------- safety
# Every request this script makes goes to a cluster IP from inside that
# cluster's namespace (or this one). Refuse addresses that are not local
# there, so that a typo never sends test traffic off the machine.
check_addresses() {
  # (no "cmd | grep -q" here: with pipefail, grep -q exiting early makes the
  # pipeline fail with SIGPIPE)
  local c ip ns addrs
  for c in A B; do
    ip=$(v "$c" IP); ns=$(v "$c" NETNS)
    if [ -n "$ns" ]; then
      [ -e "/run/netns/$ns" ] \
        || die "network namespace $ns does not exist (create it with ip netns add)"
      addrs=$(ip -n "$ns" -o -4 addr show)
      [[ "$addrs" == *" inet $ip/"* ]] \
        || die "$ip is not an address inside namespace $ns"
    else
      addrs=$(ip -o -4 addr show)
      [[ "$ip" == 127.* || "$addrs" == *" inet $ip/"* ]] \
        || die "$ip is neither loopback nor a local address"
    fi
  done
}

# ----------------------------------------------------------------- start
spawn() {  # $1 cluster, $2 name, rest: command; records "name pid starttime"
  local c=$1 name=$2; shift 2
  local lc; lc=${c,,}
  local logf="$DIR/$lc/log/$name.log"
  # setsid: own session, so it does not die with the caller's terminal or
  # process group; python warnings to the log, not the terminal
  if [ -n "$(v "$c" NETNS)" ]; then
    PYTHONWARNINGS=ignore setsid ip netns exec "$(v "$c" NETNS)" "$@" \
      </dev/null >>"$logf" 2>&1 &
  else
    PYTHONWARNINGS=ignore setsid "$@" </dev/null >>"$logf" 2>&1 &
  fi
  echo "$lc-$name $! $(pid_start $!)" >> "$PIDS"
}

wait_http() {  # $1 cluster, $2 url; waits for HTTP 200
  local deadline=$((SECONDS + START_TIMEOUT))
  until [ "$(in_ns "$1" curl -s -o /dev/null -w '%{http_code}' "$2" || true)" = 200 ]; do
    [ $SECONDS -lt $deadline ] || die "timeout waiting for $2 (see $DIR/*/log)"
    sleep 0.2
  done
}

start_cluster() {
  local c=$1 lc; lc=${1,,}
  local d="$DIR/$lc" ns; ns=$(v "$c" NETNS)
  if [ -n "$ns" ]; then ip netns exec "$ns" ip link set lo up; fi
  # memcached refuses to run as root without -u root; -U 0: no UDP
  spawn "$c" memcached memcached -u root -l 127.0.0.1 -p "$(v "$c" MC)" -U 0 -m 16 -t 1
  spawn "$c" account   swift-account-server   "$d/etc/account-server.conf" -v
  spawn "$c" container swift-container-server "$d/etc/container-server.conf" -v
  spawn "$c" object    swift-object-server    "$d/etc/object-server.conf" -v
  spawn "$c" proxy     swift-proxy-server     "$d/etc/proxy-server.conf" -v
  # daemons: without "once" they loop with the configured interval
  spawn "$c" container-sync    swift-container-sync    "$d/etc/container-server.conf" -v
  # account-level stats (X-Account-Object-Count/Bytes-Used) are only updated
  # by the container-updater; it is CPU-hungry, so only on request
  if [ "$UPDATER_INTERVAL" != 0 ]; then
    spawn "$c" container-updater swift-container-updater "$d/etc/container-server.conf" -v
  fi
}

wait_cluster() {
  local c=$1 ip base proxy
  ip=$(v "$c" IP); base=$(v "$c" BASE); proxy=$(v "$c" PROXY)
  wait_http "$c" "http://$ip:$base/healthcheck"
  wait_http "$c" "http://$ip:$((base + 1))/healthcheck"
  wait_http "$c" "http://$ip:$((base + 2))/healthcheck"
  wait_http "$c" "http://$ip:$proxy/healthcheck"
  local deadline=$((SECONDS + START_TIMEOUT)) tok
  if [ -n "$KS_URL" ]; then
    # keystone mode: no user of our own. memcached accepts connections, and
    # the proxy's auth filters answer 401 to a request without a token
    # (keystone itself is not asked)
    until in_ns "$c" bash -c "exec 3<>/dev/tcp/127.0.0.1/$(v "$c" MC)" 2>/dev/null \
          && [ "$(in_ns "$c" curl -s -o /dev/null -w '%{http_code}' \
                   "http://$ip:$proxy/v1/AUTH_healthcheck")" = 401 ]; do
      [ $SECONDS -lt $deadline ] || die "cluster $c: memcached or 401 check failed"
      sleep 0.2
    done
    return 0
  fi
  # tempauth needs memcached: a successful auth + account HEAD proves it
  while :; do
    tok=$(in_ns "$c" curl -s -o /dev/null -D - \
            -H 'X-Auth-User: test:tester' -H 'X-Auth-Key: testing' \
            "http://$ip:$proxy/auth/v1.0" | tr -d '\r' \
          | awk -F': ' 'tolower($1)=="x-auth-token"{print $2}' || true)
    if [ -n "$tok" ]; then
      case "$(in_ns "$c" curl -s -o /dev/null -w '%{http_code}' \
                -I -H "X-Auth-Token: $tok" "http://$ip:$proxy/v1/AUTH_test")" in
        200|204) break ;;
      esac
    fi
    [ $SECONDS -lt $deadline ] || die "cluster $c: auth/account check failed"
    sleep 0.2
  done
}

do_start_one() {  # restart one cluster of a configured DIR
  [ -f "$STATE" ] || die "no $STATE: run '$0 $DIR start' first"
  local C=${ONLY^^} n p st
  if [ -f "$PIDS" ]; then
    while read -r n p st; do
      [[ "$n" == "$ONLY-"* ]] || continue
      ! pid_alive "$p" "$st" || die "cluster $ONLY is running; stop it first"
    done < "$PIDS"
    local keep; keep=$(grep -v "^$ONLY-" "$PIDS" || true)
    printf '%s\n' "$keep" | sed '/^$/d' > "$PIDS"
  fi
  check_addresses
  start_cluster "$C"
  wait_cluster "$C"
  log "cluster $ONLY started"
}

do_start() {
  [ "$(id -u)" = 0 ] || die "must run as root"
  if [ -n "$ONLY" ]; then do_start_one; return; fi
  if [ -s "$PIDS" ]; then
    local n p st alive=0
    while read -r n p st; do pid_alive "$p" "$st" && alive=1; done < "$PIDS"
    [ $alive = 0 ] || die "already running (see $PIDS); run '$0 $DIR stop' first"
    rm -f "$PIDS"
  fi
  install_if_missing
  check_addresses
  mkdir -p "$DIR"
  local var
  : > "$STATE"
  for var in A_IP B_IP A_PROXY B_PROXY A_BASE B_BASE A_MC B_MC A_NETNS B_NETNS \
             KS_URL KS_SWIFT_PW TOKEN_CACHE_TIME; do
    printf '%s=%q\n' "$var" "${!var}" >> "$STATE"
  done
  local t0; t0=$(date +%s.%N)
  write_swift_conf
  write_cluster A
  write_cluster B
  local t1; t1=$(date +%s.%N)
  start_cluster A
  start_cluster B
  wait_cluster A
  wait_cluster B
  local t2; t2=$(date +%s.%N)
  if [ -n "$KS_URL" ]; then
    cat > "$DIR/env.sh" <<EOF
SWIFT_AUTH=keystone
SWIFT_KEYSTONE_URL=$KS_URL
SWIFT_A_PROXY_URL=http://$A_IP:$A_PROXY
SWIFT_B_PROXY_URL=http://$B_IP:$B_PROXY
SWIFT_A_NETNS=$A_NETNS
SWIFT_B_NETNS=$B_NETNS
SWIFT_REALM=realm1
SWIFT_A_CLUSTER=clustera
SWIFT_B_CLUSTER=clusterb
EOF
    log "$(awk "BEGIN{printf \"configured (rings built) in %.1f s, healthy %.1f s after start\", $t1 - $t0, $t2 - $t1}")"
    echo "cluster A: proxy http://$A_IP:$A_PROXY${A_NETNS:+  (netns $A_NETNS)}"
    echo "cluster B: proxy http://$B_IP:$B_PROXY${B_NETNS:+  (netns $B_NETNS)}"
    echo "auth: keystone $KS_URL (accounts AUTH_<project id>); env in $DIR/env.sh"
    return 0
  fi
  cat > "$DIR/env.sh" <<EOF
SWIFT_A_AUTH_URL=http://$A_IP:$A_PROXY/auth/v1.0
SWIFT_B_AUTH_URL=http://$B_IP:$B_PROXY/auth/v1.0
SWIFT_A_STORAGE_URL=http://$A_IP:$A_PROXY/v1/AUTH_test
SWIFT_B_STORAGE_URL=http://$B_IP:$B_PROXY/v1/AUTH_test
SWIFT_A_NETNS=$A_NETNS
SWIFT_B_NETNS=$B_NETNS
SWIFT_USER=test:tester
SWIFT_KEY=testing
SWIFT_REALM=realm1
SWIFT_A_CLUSTER=clustera
SWIFT_B_CLUSTER=clusterb
SWIFT_AUTH=tempauth
SWIFT_A_PROXY_URL=http://$A_IP:$A_PROXY
SWIFT_B_PROXY_URL=http://$B_IP:$B_PROXY
EOF
  log "$(awk "BEGIN{printf \"configured (rings built) in %.1f s, healthy %.1f s after start\", $t1 - $t0, $t2 - $t1}")"
  echo "cluster A: auth http://$A_IP:$A_PROXY/auth/v1.0  storage http://$A_IP:$A_PROXY/v1/AUTH_test${A_NETNS:+  (netns $A_NETNS)}"
  echo "cluster B: auth http://$B_IP:$B_PROXY/auth/v1.0  storage http://$B_IP:$B_PROXY/v1/AUTH_test${B_NETNS:+  (netns $B_NETNS)}"
  echo "user test:tester key testing; realm1 clusters clustera, clusterb; env in $DIR/env.sh"
}

# ----------------------------------------------------------------- stop
# Every recorded process was started under setsid, so it leads its own
# process group (id = its PID) and the WSGI servers' forked workers are in that
# group. members PID STARTTIME prints the PIDs to signal: the group if its
# leader is the recorded process, or the orphaned members if the leader is
# gone (Linux does not reuse a PID while a group with that id exists).
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
  for sig in TERM KILL; do
    while read -r n p st; do
      [[ -z "$ONLY" || "$n" == "$ONLY-"* ]] || continue
      for m in $(members "$p" "$st"); do
        [ $sig = TERM ] || log "$n: sending SIGKILL to $m"
        kill -"$sig" "$m" 2>/dev/null || true
      done
    done < "$PIDS"
    [ $sig = KILL ] && break
    deadline=$((SECONDS + 10))
    while [ $SECONDS -lt $deadline ]; do
      m=
      while read -r n p st; do
        [[ -z "$ONLY" || "$n" == "$ONLY-"* ]] || continue
        m="$m$(members "$p" "$st")"
      done < "$PIDS"
      [ -n "$m" ] || break
      sleep 0.2
    done
  done
  if [ -n "$ONLY" ]; then
    local keep; keep=$(grep -v "^$ONLY-" "$PIDS" || true)
    printf '%s\n' "$keep" | sed '/^$/d' > "$PIDS"
    log "cluster $ONLY stopped"
  else
    rm -f "$PIDS"
    log "stopped"
  fi
}

do_status() {
  [ -f "$PIDS" ] || { echo "not running"; return 1; }
  local n p st rc=0
  while read -r n p st; do
    if pid_alive "$p" "$st"; then echo "$n $p running"; else echo "$n $p DEAD"; rc=1; fi
  done < "$PIDS"
  return $rc
}

# ----------------------------------------------------------------- check
do_check() {
  [ -f "$STATE" ] || die "no $STATE: start the clusters first"
  # shellcheck disable=SC1091
  . "$DIR/env.sh"
  # the check runs in A's namespace and also talks to B: B must be reachable
  # there without a gateway (loopback, or a link the caller set up)
  local route; route=$(in_ns A ip route get "$B_IP")
  if [[ "$route" == *" via "* ]]; then
    die "B ($B_IP) is routed through a gateway from A's namespace; refusing"
  fi
  if [ -n "$KS_URL" ]; then
    # keystone mode: this script has no Keystone user, so no PUT/GET/sync
    local c ip proxy code
    for c in A B; do
      ip=$(v "$c" IP); proxy=$(v "$c" PROXY)
      code=$(in_ns A curl -s -o /dev/null -w '%{http_code}' "http://$ip:$proxy/healthcheck" || true)
      [ "$code" = 200 ] || die "cluster $c: healthcheck answered $code"
      code=$(in_ns A curl -s -o /dev/null -w '%{http_code}' "http://$ip:$proxy/v1/AUTH_check" || true)
      [ "$code" = 401 ] || die "cluster $c: request without a token answered $code, want 401"
    done
    echo "check OK (keystone mode): both proxies healthy, 401 without a token; PUT/GET/sync not checked (needs a Keystone user)"
    return 0
  fi
  in_ns A "$PY" - "$SWIFT_A_AUTH_URL" "$SWIFT_B_AUTH_URL" "$SWIFT_USER" "$SWIFT_KEY" <<'EOF'
import sys, time, uuid, requests
a_auth, b_auth, user, key = sys.argv[1:5]
def auth(url):
    r = requests.get(url, headers={'X-Auth-User': user, 'X-Auth-Key': key})
    r.raise_for_status()
    return r.headers['X-Storage-Url'], r.headers['X-Auth-Token']
(a_url, a_tok), (b_url, b_tok) = auth(a_auth), auth(b_auth)
ha, hb = {'X-Auth-Token': a_tok}, {'X-Auth-Token': b_tok}
src, dst = 'check-src-' + uuid.uuid4().hex[:8], 'check-dst-' + uuid.uuid4().hex[:8]
syncKey = uuid.uuid4().hex
r = requests.put(f'{b_url}/{dst}', headers={**hb, 'X-Container-Sync-Key': syncKey}); r.raise_for_status()
r = requests.put(f'{a_url}/{src}', headers={**ha, 'X-Container-Sync-Key': syncKey,
                 'X-Container-Sync-To': f'//realm1/clusterb/AUTH_test/{dst}'}); r.raise_for_status()
r = requests.put(f'{a_url}/{src}/hello.txt', data=b'hello', headers=ha); r.raise_for_status()
etag = r.headers['Etag']
r = requests.get(f'{a_url}/{src}/hello.txt', headers=ha); assert r.content == b'hello'
lst = requests.get(f'{a_url}/{src}?format=json', headers=ha).json()
assert lst[0]['name'] == 'hello.txt' and lst[0]['hash'] == etag, lst
t0 = time.time()
while time.time() - t0 < 120:
    r = requests.head(f'{b_url}/{dst}/hello.txt', headers=hb)
    if r.status_code == 200:
        break
    time.sleep(0.2)
else:
    sys.exit('FAIL: object not synced to B within 120 s')
assert r.headers['Etag'] == etag
print(f'check OK: auth, PUT/GET/listing on A, synced A->B in {time.time() - t0:.1f} s')
EOF
}

case "$MODE" in
  start)  do_start ;;
  stop)   do_stop ;;
  status) do_status ;;
  check)  do_check ;;
  *) usage ;;
esac
