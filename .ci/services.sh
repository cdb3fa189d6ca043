# .ci/services.sh — source it (bash): Redis and memcached on loopback, non-default ports,
# and Prometheus's binaries for the tests that start their own server.
# Idempotent: installs the Debian packages when missing, starts a server only when none
# answers on its port, and stops on exit (EXIT trap) only the servers it started itself.
# Exports REDIS_PORT, MEMCACHED_PORT and REDIS_URL for the tests.
REDIS_PORT=${REDIS_PORT:-6390}; MEMCACHED_PORT=${MEMCACHED_PORT:-11290}
export REDIS_PORT MEMCACHED_PORT REDIS_URL="redis://127.0.0.1:${REDIS_PORT}/0"
SVC_DIR=$(mktemp -d /tmp/vix_ttl_svc.XXXXXX)
# prometheus brings promtool (the alert-rule check) and the server the exporter test scrapes with.
if ! command -v redis-server >/dev/null || ! command -v memcached >/dev/null || ! command -v promtool >/dev/null; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing: install Debian's redis-server, memcached and prometheus (as root)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  echo "installing Debian's redis-server, memcached and prometheus for the tests:" \
       "apt-get install --no-install-recommends redis-server memcached prometheus" >&2
  apt-get update -qq && apt-get install -y -qq --no-install-recommends redis-server memcached prometheus >/dev/null
fi
redis_ok() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; }
mc_ok() { (exec 3<>"/dev/tcp/127.0.0.1/$MEMCACHED_PORT" && printf 'version\r\n' >&3 \
           && timeout 1 head -c 7 <&3 | grep -q VERSION) 2>/dev/null; }
OWN_REDIS=0; OWN_MC=0
if ! redis_ok; then
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no --daemonize yes \
    --dir "$SVC_DIR" --pidfile "$SVC_DIR/redis.pid" --logfile "$SVC_DIR/redis.log" && OWN_REDIS=1
fi
if ! mc_ok; then
  # memcached refuses to run as root unless told which user to become.
  MC_USER=(); [ "$(id -u)" = 0 ] && MC_USER=(-u root)
  memcached -d "${MC_USER[@]}" -l 127.0.0.1 -p "$MEMCACHED_PORT" -U 0 -m 64 -P "$SVC_DIR/memcached.pid" \
    && OWN_MC=1
fi
stop_services() {
  if [ "$OWN_REDIS" = 1 ]; then redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true; fi
  if [ "$OWN_MC" = 1 ] && [ -s "$SVC_DIR/memcached.pid" ]; then
    pid=$(cat "$SVC_DIR/memcached.pid"); kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do mc_ok || break; sleep 0.1; done   # not kill -0: zombies linger
  fi
  rm -rf "$SVC_DIR"
}
trap stop_services EXIT
for _ in $(seq 1 100); do redis_ok && mc_ok && break; sleep 0.1; done
redis_ok && mc_ok || { echo "cache servers not ready" >&2; cat "$SVC_DIR/redis.log" >&2; exit 1; }
echo "redis 127.0.0.1:$REDIS_PORT + memcached 127.0.0.1:$MEMCACHED_PORT ready (own: $OWN_REDIS/$OWN_MC)"
