#!/usr/bin/env bash
# Real RocketMQ name server + broker(s) for interop tests (RocketMQ-Rust 1.0.0 from crates.io,
# an independent implementation of the remoting protocol).
#
#   scripts/real-broker.sh install                 # once per machine (~25 min of compiling)
#   scripts/real-broker.sh start DIR [NS_PORT] [BROKER_PORT] [BROKERS]   # prints the name server address
#   scripts/real-broker.sh start-tls DIR [NS_PORT] [BROKER_PORT] [BROKERS]
#                                                  # the same cluster with TLS: a test CA and a
#                                                  # certificate for 127.0.0.1 are made in DIR/tls
#                                                  # (scripts/tls-certs.sh; CA file DIR/tls/ca.pem);
#                                                  # brokers serve TLS only ("enforcing"), the name
#                                                  # server TLS and plain ("permissive": brokers
#                                                  # register over plain TCP)
#   scripts/real-broker.sh stop DIR
#   scripts/real-broker.sh kill-broker DIR NAME    # e.g. broker-a (SIGKILL, for fault tests)
#   scripts/real-broker.sh start-broker DIR NAME   # start one broker again with its old config
#   scripts/real-broker.sh pause-broker DIR NAME   # SIGSTOP: connections stay open, nothing answers
#   scripts/real-broker.sh resume-broker DIR NAME  # SIGCONT
#   scripts/real-broker.sh kill-namesrv DIR        # SIGKILL the name server
#   scripts/real-broker.sh start-namesrv DIR       # start it again on its port; brokers register
#                                                  # with it again within registerNameServerPeriod (10 s)
#   scripts/real-broker.sh status DIR              # which processes of DIR are alive
#
# Options of `start`, from the environment:
#   BROKER_EXTRA='key = value ...'   lines added to the [broker] table of every broker.toml
#   ROCKETMQ_ACL_FILE=FILE           ACL on: authentication and authorization enabled, users and
#                                    topic permissions from FILE (Java plain_acl.yml format:
#                                    accounts with accessKey, secretKey, admin, defaultTopicPerm,
#                                    topicPerms); each broker keeps its auth metadata in its own
#                                    directory. The name server checks nothing either way.
#
# Every broker has traceTopicEnable on: it creates RMQ_SYS_TRACE_TOPIC (1 queue) at start, as a
# Java broker with broker-trace.properties does, for the message-trace interop test
# (tests/interop_trace.rs); auto-creation would make it on first send too.
#
# Everything listens on 127.0.0.1 only. Broker i (broker-a, broker-b, ...) listens on
# BROKER_PORT + 10*i and also takes the port 2 below it (VIP channel) and 1 above it (HA).
# `start` refuses ports that are already taken (exit status 3), so a caller can pick other ones.
# State (configs, stores, logs, pids) lives in DIR; `stop` leaves it for inspection.
#
# Binaries live in $ROCKETMQ_REAL_ROOT (default $HOME/.local/rocketmq-real), outside the checkout.
set -euo pipefail
root=${ROCKETMQ_REAL_ROOT:-$HOME/.local/rocketmq-real}
bin=$root/bin

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() { # PORT [what]
  for _ in $(seq 1 300); do
    port_open "$1" && return 0
    sleep 0.2
  done
  echo "port $1 ${2:-} did not open" >&2
  return 1
}

alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_gone() { # PIDFILE SECONDS
  local pid
  [[ -f $1 ]] || return 0
  pid=$(cat "$1")
  for _ in $(seq 1 $((${2} * 10))); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  return 1
}

# The broker is built with its `tls` feature (TLS interop tests; plain connections work the same
# when its TOML does not enable TLS). cargo records the features of each install in
# .crates2.json: a broker installed without TLS counts as missing and is installed again.
broker_has_tls() {
  [[ -f $root/.crates2.json ]] &&
    python3 - "$root/.crates2.json" <<'PY'
import json, sys
installs = json.load(open(sys.argv[1])).get("installs", {})
sys.exit(0 if any(k.startswith("rocketmq-broker ") and "tls" in v.get("features", [])
                  for k, v in installs.items()) else 1)
PY
}
installed() { [[ -x $bin/rocketmq-namesrv-rust && -x $bin/rocketmq-broker-rust ]] && broker_has_tls; }

broker_ports() { # PORT -> the ports one broker takes
  echo "$(($1 - 2)) $1 $(($1 + 1))"
}

registrations() { # LOG -> how many times the broker registered with the name server
  [[ -f $1 ]] || { echo 0; return; }
  grep -c "Register broker to name remoting_server success" "$1" || true
}

broker_tls_toml() { # DIR -> the broker's TLS tables when DIR is a TLS cluster
  [[ -f $1/tls/mode ]] || return 0
  cat <<TOML
[broker.brokerServerConfig.tlsConfig]
enable = true
testModeEnable = false

[broker.brokerServerConfig.tlsConfig.server]
mode = "$(cat "$1/tls/mode")"
certPath = "$1/tls/server.pem"
keyPath = "$1/tls/server.key"
TOML
}

start_broker() { # DIR NAME
  local dir=$1 name=$2 bdir=$1/$2 port p before
  port=$(cat "$bdir/port")
  if alive "$dir/$name.pid"; then
    echo "$name is already running (pid $(cat "$dir/$name.pid"))" >&2
    return 1
  fi
  # A broker killed a moment ago may still hold its ports for a few ms.
  for p in $(broker_ports "$port"); do
    for _ in $(seq 1 100); do
      port_open "$p" || break
      sleep 0.1
    done
    if port_open "$p"; then
      echo "port $p of $name is taken" >&2
      return 3
    fi
  done
  before=$(registrations "$bdir/broker.log")
  ROCKETMQ_HOME=$bdir ROCKETMQ_SECURITY_PROFILE=development-insecure-loopback \
    nohup "$bin/rocketmq-broker-rust" -c "$bdir/conf/broker.toml" -n "$(cat "$dir/namesrv.addr")" \
    >>"$bdir/broker.log" 2>&1 &
  echo $! >"$dir/$name.pid"
  wait_port "$port" "($name)"
  # Ready once it has registered with the name server (it does so right after start).
  for _ in $(seq 1 300); do
    [[ $(registrations "$bdir/broker.log") -gt $before ]] && return 0
    alive "$dir/$name.pid" || { echo "$name exited; see $bdir/broker.log" >&2; return 1; }
    sleep 0.1
  done
  echo "$name did not register with the name server within 30 s; see $bdir/broker.log" >&2
  return 1
}

start_namesrv() { # DIR
  local dir=$1 port args
  port=$(cut -d: -f2 "$dir/namesrv.addr")
  if alive "$dir/namesrv.pid"; then
    echo "the name server of $dir is already running (pid $(cat "$dir/namesrv.pid"))" >&2
    return 1
  fi
  for _ in $(seq 1 100); do
    port_open "$port" || break
    sleep 0.1
  done
  if port_open "$port"; then
    echo "port $port of the name server is taken" >&2
    return 3
  fi
  args=(--listenPort "$port" --bindAddress 127.0.0.1 --rocketmqHome "$dir")
  if [[ -f $dir/tls/mode ]]; then
    # TLS settings are read from a config file only (tls.* keys, rocketmq-namesrv config.rs).
    cat >"$dir/namesrv.toml" <<TOML
listenPort = $port
bindAddress = "127.0.0.1"
tls.enable = true
tls.test.mode.enable = false
tls.server.mode = "permissive"
tls.server.certPath = "$dir/tls/server.pem"
tls.server.keyPath = "$dir/tls/server.key"
TOML
    args=(-c "$dir/namesrv.toml")
  fi
  ROCKETMQ_HOME=$dir ROCKETMQ_SECURITY_PROFILE=development-insecure-loopback \
    nohup "$bin/rocketmq-namesrv-rust" "${args[@]}" >>"$dir/namesrv.log" 2>&1 &
  echo $! >"$dir/namesrv.pid"
  wait_port "$port" "(name server)"
}

stop_pid() { # PIDFILE
  alive "$1" || { rm -f "$1"; return 0; }
  kill -CONT "$(cat "$1")" 2>/dev/null || true # a paused broker handles TERM only once resumed
  kill "$(cat "$1")" 2>/dev/null || true
  wait_gone "$1" 10 || { kill -9 "$(cat "$1")" 2>/dev/null || true; wait_gone "$1" 5 || true; }
  rm -f "$1"
}

cmd=${1:-}
case $cmd in
install)
  if installed; then
    echo "already installed in $root"
  else
    # The name server has TLS in its default build; the broker needs the feature. Both installs
    # build in one target directory, so the dependencies they share (tokio, the remoting and
    # common crates, ...) are compiled once instead of twice; it is removed afterwards.
    build=$root/build
    [[ -x $bin/rocketmq-namesrv-rust ]] ||
      cargo install --locked --root "$root" --target-dir "$build" rocketmq-namesrv@1.0.0
    cargo install --locked --force --root "$root" --target-dir "$build" rocketmq-broker@1.0.0 --features tls
    rm -rf "$build"
  fi
  ;;
start | start-tls)
  dir=${2:?usage: $cmd DIR [NS_PORT] [BROKER_PORT] [BROKERS]}
  ns_port=${3:-19876}
  br_port=${4:-20911}
  brokers=${5:-1}
  installed || { echo "not installed: run $0 install" >&2; exit 1; }
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if alive "$dir/namesrv.pid"; then
    echo "a name server of $dir is already running (pid $(cat "$dir/namesrv.pid"))" >&2
    exit 1
  fi
  ports=$ns_port
  for i in $(seq 0 $((brokers - 1))); do ports="$ports $(broker_ports $((br_port + 10 * i)))"; done
  for p in $ports; do
    if port_open "$p"; then
      echo "port $p is taken" >&2
      exit 3
    fi
  done
  rm -rf "$dir/tls"
  if [[ $cmd == start-tls ]]; then
    "$(dirname "$0")/tls-certs.sh" "$dir/tls"
    echo enforcing >"$dir/tls/mode"
  fi
  echo "127.0.0.1:$ns_port" >"$dir/namesrv.addr"
  start_namesrv "$dir"
  for i in $(seq 0 $((brokers - 1))); do
    name=broker-$(printf "\\x$(printf %x $((97 + i)))")
    port=$((br_port + 10 * i))
    bdir=$dir/$name
    mkdir -p "$bdir/conf" "$bdir/store"
    echo "$port" >"$bdir/port"
    extra=${BROKER_EXTRA:-}
    if [[ -n ${ROCKETMQ_ACL_FILE:-} ]]; then
      [[ -f $ROCKETMQ_ACL_FILE ]] || { echo "ACL file $ROCKETMQ_ACL_FILE does not exist" >&2; exit 1; }
      acl_file=$(cd "$(dirname "$ROCKETMQ_ACL_FILE")" && pwd)/$(basename "$ROCKETMQ_ACL_FILE")
      mkdir -p "$bdir/auth"
      extra="authenticationEnabled = true
authorizationEnabled = true
authConfigPath = \"$bdir/auth\"
aclFile = \"$acl_file\"
$extra"
    fi
    cat >"$bdir/conf/broker.toml" <<TOML
[broker]
namesrvAddr = "127.0.0.1:$ns_port"
brokerIp1 = "127.0.0.1"
listenPort = $port
storePathRootDir = "$bdir/store"
# Auto-create is relied on by request-reply (tests/interop_request_reply.rs): replies go to
# "<cluster>_REPLY_TOPIC" (DefaultCluster_REPLY_TOPIC), but RocketMQ-Rust 1.0.0 pre-creates
# "<brokerName>_REPLY_TOPIC" (broker-a_REPLY_TOPIC) instead, so the reply topic exists only
# because the first reply creates it from TBW102.
autoCreateTopicEnable = true
traceTopicEnable = true
transactionCheckInterval = 3000
transactionTimeout = 2000
registerNameServerPeriod = 10000
$extra

[broker.brokerServerConfig]
bindAddress = "127.0.0.1"
$(broker_tls_toml "$dir")

[broker.brokerIdentity]
brokerName = "$name"
brokerClusterName = "DefaultCluster"
brokerId = 0

[store]
storeType = "LocalFile"
brokerRole = "ASYNC_MASTER"
storePathRootDir = "$bdir/store"
haListenAddress = "127.0.0.1"
haListenPort = $((port + 1))
TOML
    start_broker "$dir" "$name"
  done
  echo "127.0.0.1:$ns_port"
  ;;
stop)
  dir=${2:?usage: stop DIR}
  for f in "$dir"/broker-*.pid; do
    [[ -f $f ]] && stop_pid "$f"
  done
  stop_pid "$dir/namesrv.pid"
  ;;
kill-broker)
  dir=${2:?usage: kill-broker DIR NAME}
  pidfile=$dir/${3:?name}.pid
  if alive "$pidfile"; then
    kill -9 "$(cat "$pidfile")" 2>/dev/null || true
    wait_gone "$pidfile" 10 || { echo "$3 did not die" >&2; exit 1; }
  fi
  ;;
start-broker)
  dir=${2:?usage: start-broker DIR NAME}
  start_broker "$(cd "$dir" && pwd)" "${3:?name}"
  ;;
kill-namesrv)
  dir=${2:?usage: kill-namesrv DIR}
  if alive "$dir/namesrv.pid"; then
    kill -9 "$(cat "$dir/namesrv.pid")" 2>/dev/null || true
    wait_gone "$dir/namesrv.pid" 10 || { echo "the name server did not die" >&2; exit 1; }
  fi
  ;;
start-namesrv)
  dir=${2:?usage: start-namesrv DIR}
  start_namesrv "$(cd "$dir" && pwd)"
  ;;
pause-broker | resume-broker)
  dir=${2:?usage: $cmd DIR NAME}
  pidfile=$dir/${3:?name}.pid
  alive "$pidfile" || { echo "$3 is not running" >&2; exit 1; }
  pid=$(cat "$pidfile")
  if [[ $cmd == pause-broker ]]; then
    kill -STOP "$pid"
    # kill returns once the signal is queued; each thread stops when it next checks for it.
    # Return only when every thread of the broker shows state T (stopped), so that nothing a
    # test sends after this is handled (up to 10 s; a broker that does not stop fails here).
    stopped=
    for _ in $(seq 1 1000); do
      if ! grep -qv '^T' < <(for t in /proc/"$pid"/task/*/stat; do
        sed -E 's/^.*\) ([A-Za-z]).*$/\1/' "$t" 2>/dev/null
      done); then
        stopped=1
        break
      fi
      sleep 0.01
    done
    [[ -n $stopped ]] || { echo "$3 (pid $pid) did not stop" >&2; exit 1; }
  else
    kill -CONT "$pid"
  fi
  ;;
status)
  dir=${2:?usage: status DIR}
  for f in "$dir"/namesrv.pid "$dir"/broker-*.pid; do
    [[ -f $f ]] || continue
    if alive "$f"; then echo "$(basename "$f" .pid) running (pid $(cat "$f"))"; else echo "$(basename "$f" .pid) stopped"; fi
  done
  ;;
*)
  echo "usage: $0 install|start|start-tls|stop|kill-broker|start-broker|pause-broker|resume-broker|kill-namesrv|start-namesrv|status ..." >&2
  exit 2
  ;;
esac
