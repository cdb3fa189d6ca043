# .ci/services.sh — source it (bash): on loopback, non-default ports, the servers the tests use:
# - a Redis and a memcached;
# - a Redis Cluster of 3 masters;
# - a Redis master with one replica, watched by 3 Sentinels (master name "vixmaster");
# and Prometheus's binaries for the tests that start their own server.
# Idempotent: installs the Debian packages when missing, starts each server only when none
# answers on its port, and stops on exit (EXIT trap) only the servers it started itself.
# Exports REDIS_PORT, MEMCACHED_PORT, REDIS_URL, REDIS_CLUSTER_PORTS, SENTINEL_PORTS,
# SENTINEL_MASTER and SENTINEL_DATA_PORTS for the tests.
REDIS_PORT=${REDIS_PORT:-6390}; MEMCACHED_PORT=${MEMCACHED_PORT:-11290}
REDIS_CLUSTER_PORTS=${REDIS_CLUSTER_PORTS:-"7391 7392 7393"}
SENTINEL_DATA_PORTS=${SENTINEL_DATA_PORTS:-"7394 7395"}   # the master, then its replica
SENTINEL_PORTS=${SENTINEL_PORTS:-"26391 26392 26393"}
SENTINEL_MASTER=${SENTINEL_MASTER:-vixmaster}
export REDIS_PORT MEMCACHED_PORT REDIS_URL="redis://127.0.0.1:${REDIS_PORT}/0"
export REDIS_CLUSTER_PORTS SENTINEL_DATA_PORTS SENTINEL_PORTS SENTINEL_MASTER
SVC_DIR=$(mktemp -d /tmp/vix_ttl_svc.XXXXXX)
# prometheus brings promtool (the alert-rule check) and the server the exporter test scrapes with.
if ! command -v redis-server >/dev/null || ! command -v redis-sentinel >/dev/null \
   || ! command -v memcached >/dev/null || ! command -v promtool >/dev/null; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing: install Debian's redis-server, redis-sentinel, memcached and prometheus (as root)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  echo "installing Debian's redis-server, redis-sentinel, memcached and prometheus for the tests:" \
       "apt-get install --no-install-recommends redis-server redis-sentinel memcached prometheus" >&2
  apt-get update -qq && apt-get install -y -qq --no-install-recommends \
    redis-server redis-sentinel memcached prometheus >/dev/null
fi

answers() { redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null | grep -q PONG; }
redis_ok() { answers "$REDIS_PORT"; }
mc_ok() { (exec 3<>"/dev/tcp/127.0.0.1/$MEMCACHED_PORT" && printf 'version\r\n' >&3 \
           && timeout 1 head -c 7 <&3 | grep -q VERSION) 2>/dev/null; }
cluster_ok() {  # every node sees the whole cluster, and agrees it is up
  local port
  for port in $REDIS_CLUSTER_PORTS; do
    redis-cli -p "$port" cluster info 2>/dev/null | grep -q "cluster_state:ok" || return 1
    [ "$(redis-cli -p "$port" cluster nodes 2>/dev/null | grep -c connected)" = "$(wc -w <<<"$REDIS_CLUSTER_PORTS")" ] \
      || return 1
  done
  redis-cli --cluster check "127.0.0.1:${REDIS_CLUSTER_PORTS%% *}" 2>/dev/null | grep -q "All 16384 slots covered"
}
sentinels_ok() {  # every Sentinel knows a replica, and the replica is in sync with its master
  local port
  for port in $SENTINEL_PORTS; do
    redis-cli -p "$port" sentinel replicas "$SENTINEL_MASTER" 2>/dev/null | grep -q "slave" || return 1
  done
  for port in $SENTINEL_DATA_PORTS; do
    redis-cli -p "$port" info replication 2>/dev/null | grep -q "master_link_status:up" && return 0
  done
  return 1
}
# A data server of ours: no persistence, its own folder, a pid file to stop it by.
start_redis() {  # port, then more options
  local port=$1; shift
  mkdir -p "$SVC_DIR/$port"
  redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no --daemonize yes \
    --dir "$SVC_DIR/$port" --pidfile "$SVC_DIR/$port/redis.pid" --logfile "$SVC_DIR/$port/redis.log" "$@"
}

OWN_REDIS=0; OWN_MC=0; OWN_CLUSTER=0; OWN_SENTINEL=0
if ! redis_ok; then start_redis "$REDIS_PORT" && OWN_REDIS=1; fi
if ! mc_ok; then
  # memcached refuses to run as root unless told which user to become.
  MC_USER=(); [ "$(id -u)" = 0 ] && MC_USER=(-u root)
  memcached -d "${MC_USER[@]}" -l 127.0.0.1 -p "$MEMCACHED_PORT" -U 0 -m 64 -P "$SVC_DIR/memcached.pid" \
    && OWN_MC=1
fi
if ! cluster_ok; then
  OWN_CLUSTER=1
  for port in $REDIS_CLUSTER_PORTS; do
    start_redis "$port" --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000
  done
  for port in $REDIS_CLUSTER_PORTS; do for _ in $(seq 1 100); do answers "$port" && break; sleep 0.05; done; done
  # shellcheck disable=SC2046 - one address per port
  redis-cli --cluster create $(printf '127.0.0.1:%s ' $REDIS_CLUSTER_PORTS) --cluster-replicas 0 \
    --cluster-yes >"$SVC_DIR/cluster-create.log" 2>&1
fi
if ! sentinels_ok; then
  OWN_SENTINEL=1
  read -r MASTER_PORT REPLICA_PORT <<<"$SENTINEL_DATA_PORTS"
  # No 5 s pause before a replica's first sync (Redis 7's default for diskless syncs).
  start_redis "$MASTER_PORT" --repl-diskless-sync-delay 0
  start_redis "$REPLICA_PORT" --repl-diskless-sync-delay 0 --replicaof 127.0.0.1 "$MASTER_PORT"
  for port in $SENTINEL_PORTS; do
    mkdir -p "$SVC_DIR/$port"
    cat >"$SVC_DIR/$port/sentinel.conf" <<CONF
port $port
bind 127.0.0.1
daemonize yes
dir $SVC_DIR/$port
pidfile $SVC_DIR/$port/sentinel.pid
logfile $SVC_DIR/$port/sentinel.log
sentinel monitor $SENTINEL_MASTER 127.0.0.1 $MASTER_PORT 2
sentinel down-after-milliseconds $SENTINEL_MASTER 1000
sentinel failover-timeout $SENTINEL_MASTER 3000
sentinel parallel-syncs $SENTINEL_MASTER 1
CONF
    redis-sentinel "$SVC_DIR/$port/sentinel.conf"
  done
fi

stop_pid_file() {  # a daemon we started, by its pid file: stopped, and waited for
  local file=$1 pid
  [ -s "$file" ] || return 0
  pid=$(cat "$file"); kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do [ -e "/proc/$pid" ] && ! grep -q zombie "/proc/$pid/status" 2>/dev/null || break; sleep 0.1; done
}
stop_services() {
  local port
  if [ "$OWN_REDIS" = 1 ]; then redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true; fi
  if [ "$OWN_MC" = 1 ] && [ -s "$SVC_DIR/memcached.pid" ]; then
    pid=$(cat "$SVC_DIR/memcached.pid"); kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do mc_ok || break; sleep 0.1; done   # not kill -0: zombies linger
  fi
  if [ "$OWN_CLUSTER" = 1 ]; then
    for port in $REDIS_CLUSTER_PORTS; do redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true; done
  fi
  if [ "$OWN_SENTINEL" = 1 ]; then
    for port in $SENTINEL_PORTS; do stop_pid_file "$SVC_DIR/$port/sentinel.pid"; done
    # A failover test may have killed one and restarted it: stop whatever answers.
    for port in $SENTINEL_DATA_PORTS; do redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true; done
  fi
  rm -rf "$SVC_DIR"
}
trap stop_services EXIT

ready() { redis_ok && mc_ok && cluster_ok && sentinels_ok; }
for _ in $(seq 1 200); do ready && break; sleep 0.1; done
if ! ready; then
  echo "servers not ready: redis $(redis_ok && echo ok), memcached $(mc_ok && echo ok)," \
       "cluster $(cluster_ok && echo ok), sentinels $(sentinels_ok && echo ok)" >&2
  cat "$SVC_DIR"/*/*.log "$SVC_DIR"/cluster-create.log >&2 2>/dev/null
  exit 1
fi
echo "redis 127.0.0.1:$REDIS_PORT + memcached 127.0.0.1:$MEMCACHED_PORT + cluster ($REDIS_CLUSTER_PORTS)" \
     "+ sentinels ($SENTINEL_PORTS, $SENTINEL_MASTER on $SENTINEL_DATA_PORTS) ready" \
     "(own: $OWN_REDIS/$OWN_MC/$OWN_CLUSTER/$OWN_SENTINEL)"
