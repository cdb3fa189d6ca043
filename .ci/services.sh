# .ci/services.sh — source it (bash): on loopback, this run's own servers for the tests:
# - a Redis and a memcached;
# - a Redis Cluster of 3 masters;
# - a Redis master with one replica, watched by 3 Sentinels (master name "vixmaster");
# and Prometheus's binaries for the tests that start their own server.
# Ports: the ones the caller exports (REDIS_PORT, MEMCACHED_PORT, REDIS_CLUSTER_PORTS,
# SENTINEL_DATA_PORTS, SENTINEL_PORTS), else free ones picked for this run
# (.ci/free_ports.py), so that two runs at the same time never share a server: the tests
# flush theirs. A server already answering on a port the caller exported is used as it is
# (a nested .ci/with-services under .ci/run finds its caller's); every other server is
# started here, checked to be the process answering on its port, and stopped on exit (EXIT
# trap) — those, and only those. Installs the Debian packages when missing (as root).
# Exports the variables above, REDIS_URL and SENTINEL_MASTER for the tests.
CI_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
GIVEN_REDIS=${REDIS_PORT:-}; GIVEN_MC=${MEMCACHED_PORT:-}; GIVEN_CLUSTER=${REDIS_CLUSTER_PORTS:-}
GIVEN_SENTINEL_DATA=${SENTINEL_DATA_PORTS:-}; GIVEN_SENTINELS=${SENTINEL_PORTS:-}
SENTINEL_MASTER=${SENTINEL_MASTER:-vixmaster}
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

all_given() {
  [ -n "$GIVEN_REDIS" ] && [ -n "$GIVEN_MC" ] && [ -n "$GIVEN_CLUSTER" ] \
    && [ -n "$GIVEN_SENTINEL_DATA" ] && [ -n "$GIVEN_SENTINELS" ]
}
pick_ports() {  # the ports the caller did not export: free ones, picked now
  local -a free
  all_given && return 0
  if ! command -v python3 >/dev/null; then echo "python3 is needed to pick free ports" >&2; return 1; fi
  # shellcheck disable=SC2086 - the ports the caller exported, one argument each
  read -r -a free <<<"$(python3 "$CI_DIR/free_ports.py" 10 $GIVEN_REDIS $GIVEN_MC $GIVEN_CLUSTER \
                        $GIVEN_SENTINEL_DATA $GIVEN_SENTINELS)"
  [ "${#free[@]}" = 10 ] || return 1
  REDIS_PORT=${GIVEN_REDIS:-${free[0]}}
  MEMCACHED_PORT=${GIVEN_MC:-${free[1]}}
  REDIS_CLUSTER_PORTS=${GIVEN_CLUSTER:-"${free[*]:2:3}"}
  SENTINEL_DATA_PORTS=${GIVEN_SENTINEL_DATA:-"${free[*]:5:2}"}   # the master, then its replica
  SENTINEL_PORTS=${GIVEN_SENTINELS:-"${free[*]:7:3}"}
}

answers() { timeout 2 redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null | grep -q PONG; }
redis_ok() { answers "$REDIS_PORT"; }
mc_stats() { (exec 3<>"/dev/tcp/127.0.0.1/$1" && printf 'stats\r\nquit\r\n' >&3 && timeout 1 cat <&3) 2>/dev/null; }
mc_ok() { mc_stats "$MEMCACHED_PORT" | grep -q "^STAT pid"; }
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

# What answers on a port is ours when it is the process in our pid file for that port: not a
# server someone else started there between the port's pick and ours.
pid_of() { cat "$SVC_DIR/$1/pid" 2>/dev/null; }
serving_pid() {  # the process id the server on port $1 gives (Redis, Sentinel or memcached)
  if [ "$1" = "$MEMCACHED_PORT" ]; then
    mc_stats "$1" | tr -d '\r' | sed -n 's/^STAT pid //p'
  else
    timeout 2 redis-cli -p "$1" info server 2>/dev/null | tr -d '\r' | sed -n 's/^process_id://p'
  fi
}
ours() { local pid; pid=$(pid_of "$1") && [ -n "$pid" ] && [ "$(serving_pid "$1")" = "$pid" ]; }
wait_ours() {  # ports...: each answers, and is ours
  local port
  for port in "$@"; do
    for _ in $(seq 1 200); do ours "$port" && break; sleep 0.05; done
    ours "$port" || { echo "127.0.0.1:$port: not the server this run started there" >&2; return 1; }
  done
}

OWN_PORTS=()  # every port this run started a server on, to stop on exit
# A data server of ours: no persistence, its own folder, a pid file to stop it by.
start_redis() {  # port, then more options
  local port=$1; shift
  mkdir -p "$SVC_DIR/$port"; OWN_PORTS+=("$port")
  redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no --daemonize yes \
    --dir "$SVC_DIR/$port" --pidfile "$SVC_DIR/$port/pid" --logfile "$SVC_DIR/$port/redis.log" "$@"
}
start_memcached() {
  # memcached refuses to run as root unless told which user to become.
  local -a as_user=(); [ "$(id -u)" = 0 ] && as_user=(-u root)
  mkdir -p "$SVC_DIR/$MEMCACHED_PORT"; OWN_PORTS+=("$MEMCACHED_PORT")
  memcached -d "${as_user[@]}" -l 127.0.0.1 -p "$MEMCACHED_PORT" -U 0 -m 64 -P "$SVC_DIR/$MEMCACHED_PORT/pid"
}
start_sentinel() {  # port, master port
  local port=$1
  mkdir -p "$SVC_DIR/$port"; OWN_PORTS+=("$port")
  cat >"$SVC_DIR/$port/sentinel.conf" <<CONF
port $port
bind 127.0.0.1
daemonize yes
dir $SVC_DIR/$port
pidfile $SVC_DIR/$port/pid
logfile $SVC_DIR/$port/sentinel.log
sentinel monitor $SENTINEL_MASTER 127.0.0.1 $2 2
sentinel down-after-milliseconds $SENTINEL_MASTER 1000
sentinel failover-timeout $SENTINEL_MASTER 3000
sentinel parallel-syncs $SENTINEL_MASTER 1
CONF
  redis-sentinel "$SVC_DIR/$port/sentinel.conf"
}

start_services() {  # what the caller's servers do not provide; 1 when a server is not ours
  local port master replica
  if [ -z "$GIVEN_REDIS" ] || ! redis_ok; then start_redis "$REDIS_PORT" && wait_ours "$REDIS_PORT" || return 1; fi
  if [ -z "$GIVEN_MC" ] || ! mc_ok; then start_memcached && wait_ours "$MEMCACHED_PORT" || return 1; fi
  if [ -z "$GIVEN_CLUSTER" ] || ! cluster_ok; then
    for port in $REDIS_CLUSTER_PORTS; do
      start_redis "$port" --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000 \
        || return 1
    done
    # shellcheck disable=SC2086
    wait_ours $REDIS_CLUSTER_PORTS || return 1  # before they are joined: only ours
    # shellcheck disable=SC2046 - one address per port
    redis-cli --cluster create $(printf '127.0.0.1:%s ' $REDIS_CLUSTER_PORTS) --cluster-replicas 0 \
      --cluster-yes >"$SVC_DIR/cluster-create.log" 2>&1
  fi
  if [ -z "$GIVEN_SENTINEL_DATA$GIVEN_SENTINELS" ] || ! sentinels_ok; then
    read -r master replica <<<"$SENTINEL_DATA_PORTS"
    # No 5 s pause before a replica's first sync (Redis 7's default for diskless syncs).
    start_redis "$master" --repl-diskless-sync-delay 0 && wait_ours "$master" || return 1
    start_redis "$replica" --repl-diskless-sync-delay 0 --replicaof 127.0.0.1 "$master" \
      && wait_ours "$replica" || return 1
    # Sentinels fail a master over, and reconfigure its replicas: only once both are ours.
    for port in $SENTINEL_PORTS; do start_sentinel "$port" "$master" || return 1; done
    # shellcheck disable=SC2086
    wait_ours $SENTINEL_PORTS || return 1
  fi
}

own_pid() {  # the process this run started on port $1, by its pid file, while it still is that server
  local pid
  pid=$(pid_of "$1") && [ -n "$pid" ] || return 1
  # Not another process that was given its pid since: a server's command line names its port.
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "$1" && echo "$pid"
}
stop_services() {  # every server this run started: stopped (Sentinels first), and waited for
  local i pid; local -a pids=()
  for ((i = ${#OWN_PORTS[@]} - 1; i >= 0; i--)); do
    pid=$(own_pid "${OWN_PORTS[i]}") || continue
    kill -CONT "$pid" 2>/dev/null || true  # a test may have stopped it (SIGSTOP)
    kill "$pid" 2>/dev/null && pids+=("$pid")
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 100); do [ -e "/proc/$pid" ] && ! grep -q zombie "/proc/$pid/status" 2>/dev/null || break; sleep 0.1; done
  done
  OWN_PORTS=()
}
trap 'stop_services; rm -rf "$SVC_DIR"' EXIT

ready() { redis_ok && mc_ok && cluster_ok && sentinels_ok; }
for attempt in 1 2 3; do
  if pick_ports && start_services; then
    for _ in $(seq 1 300); do ready && break; sleep 0.1; done
    ready && break
  fi
  echo "servers not ready (attempt $attempt of 3): redis $(redis_ok && echo ok)," \
       "memcached $(mc_ok && echo ok), cluster $(cluster_ok && echo ok), sentinels $(sentinels_ok && echo ok)" >&2
  # Ports the caller exported stay what they are: trying again changes nothing.
  if [ "$attempt" = 3 ] || all_given; then
    cat "$SVC_DIR"/*/*.log "$SVC_DIR"/cluster-create.log >&2 2>/dev/null
    exit 1
  fi
  stop_services
  rm -rf "${SVC_DIR:?}"/*
done
unset attempt
export REDIS_PORT MEMCACHED_PORT REDIS_URL="redis://127.0.0.1:${REDIS_PORT}/0"
export REDIS_CLUSTER_PORTS SENTINEL_DATA_PORTS SENTINEL_PORTS SENTINEL_MASTER
echo "redis 127.0.0.1:$REDIS_PORT + memcached 127.0.0.1:$MEMCACHED_PORT + cluster ($REDIS_CLUSTER_PORTS)" \
     "+ sentinels ($SENTINEL_PORTS, $SENTINEL_MASTER on $SENTINEL_DATA_PORTS) ready" \
     "(this run's own: ${OWN_PORTS[*]:-none})"
