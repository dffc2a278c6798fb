#!/usr/bin/env bash
# Real RocketMQ name server + broker(s) for interop tests (RocketMQ-Rust 1.0.0 from crates.io,
# an independent implementation of the remoting protocol).
#
#   scripts/real-broker.sh install                 # once per machine (~25 min of compiling)
#   scripts/real-broker.sh start DIR [NS_PORT] [BROKER_PORT] [BROKERS]   # prints the name server address
#   scripts/real-broker.sh stop DIR
#   scripts/real-broker.sh kill-broker DIR NAME    # e.g. broker-a (SIGKILL, for fault tests)
#   scripts/real-broker.sh start-broker DIR NAME   # start one broker again with its old config
#
# Binaries live in $ROCKETMQ_REAL_ROOT (default $HOME/.local/rocketmq-real), outside the checkout.
set -euo pipefail
root=${ROCKETMQ_REAL_ROOT:-$HOME/.local/rocketmq-real}
bin=$root/bin

wait_port() {
  for _ in $(seq 1 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.2
  done
  echo "port $1 did not open" >&2
  return 1
}

installed() { [[ -x $bin/rocketmq-namesrv-rust && -x $bin/rocketmq-broker-rust ]]; }

start_broker() { # DIR NAME
  local dir=$1 name=$2 bdir=$1/$2
  local port
  port=$(cat "$bdir/port")
  ROCKETMQ_HOME=$bdir ROCKETMQ_SECURITY_PROFILE=development-insecure-loopback \
    nohup "$bin/rocketmq-broker-rust" -c "$bdir/conf/broker.toml" -n "$(cat "$dir/namesrv.addr")" \
    >>"$bdir/broker.log" 2>&1 &
  echo $! >"$dir/$name.pid"
  wait_port "$port"
}

cmd=${1:-}
case $cmd in
install)
  if installed; then
    echo "already installed in $root"
  else
    cargo install --locked --root "$root" rocketmq-namesrv@1.0.0 rocketmq-broker@1.0.0
  fi
  ;;
start)
  dir=${2:?usage: start DIR [NS_PORT] [BROKER_PORT] [BROKERS]}
  ns_port=${3:-19876}
  br_port=${4:-20911}
  brokers=${5:-1}
  installed || { echo "not installed: run $0 install" >&2; exit 1; }
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  export ROCKETMQ_HOME=$dir ROCKETMQ_SECURITY_PROFILE=development-insecure-loopback
  nohup "$bin/rocketmq-namesrv-rust" --listenPort "$ns_port" --bindAddress 127.0.0.1 \
    --rocketmqHome "$dir" >"$dir/namesrv.log" 2>&1 &
  echo $! >"$dir/namesrv.pid"
  echo "127.0.0.1:$ns_port" >"$dir/namesrv.addr"
  wait_port "$ns_port"
  for i in $(seq 0 $((brokers - 1))); do
    name=broker-$(printf "\\x$(printf %x $((97 + i)))")
    port=$((br_port + 10 * i))
    bdir=$dir/$name
    mkdir -p "$bdir/conf" "$bdir/store"
    echo "$port" >"$bdir/port"
    cat >"$bdir/conf/broker.toml" <<TOML
[broker]
namesrvAddr = "127.0.0.1:$ns_port"
brokerIp1 = "127.0.0.1"
listenPort = $port
storePathRootDir = "$bdir/store"
autoCreateTopicEnable = true
transactionCheckInterval = 3000
transactionTimeout = 2000

[broker.brokerServerConfig]
bindAddress = "127.0.0.1"

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
  # Wait until the brokers registered with the name server (they do so right after start).
  sleep 2
  echo "127.0.0.1:$ns_port"
  ;;
stop)
  dir=${2:?usage: stop DIR}
  for f in "$dir"/broker-*.pid "$dir"/namesrv.pid; do
    [[ -f $f ]] && kill "$(cat "$f")" 2>/dev/null || true
  done
  ;;
kill-broker)
  dir=${2:?usage: kill-broker DIR NAME}
  kill -9 "$(cat "$dir/${3:?name}.pid")" 2>/dev/null || true
  ;;
start-broker)
  dir=${2:?usage: start-broker DIR NAME}
  start_broker "$(cd "$dir" && pwd)" "${3:?name}"
  ;;
*)
  echo "usage: $0 install|start|stop|kill-broker|start-broker ..." >&2
  exit 2
  ;;
esac
