#!/usr/bin/env bash
# A single-node Apache Kafka 4.x broker (KRaft, broker+controller) on 127.0.0.1 for the tests,
# run from the Maven artifacts that scripts/setup.sh put in tests/kafka/.libs.
#   broker.sh start DIR PORT   format DIR on first use, start, wait until the port answers
#   broker.sh stop DIR         SIGTERM, then SIGKILL after 10 s
#   broker.sh kill DIR         SIGKILL (a crash); DIR keeps the data for a restart
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
libs="$here/.libs"
cmd="${1:?usage: broker.sh start|stop|kill DIR [PORT]}"
dir="${2:?missing DIR}"

case "$cmd" in
  start)
    port="${3:?missing PORT}"
    [ -d "$libs" ] || { echo "broker.sh: $libs missing: run scripts/setup.sh" >&2; exit 2; }
    mkdir -p "$dir"
    cat > "$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$((port + 1))
listeners=PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:$((port + 1))
advertised.listeners=PLAINTEXT://127.0.0.1:${port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
num.partitions=3
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
PROPS
    if [ ! -f "$dir/data/meta.properties" ]; then
      cluster_id="$(python3 -c 'import uuid,base64;print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))')"
      java -cp "$libs/*" kafka.tools.StorageTool format -t "$cluster_id" \
        -c "$dir/server.properties" > "$dir/format.log" 2>&1
    fi
    nohup java -Xms128m -Xmx512m -cp "$libs/*" kafka.Kafka "$dir/server.properties" \
      > "$dir/broker.log" 2>&1 &
    echo $! > "$dir/broker.pid"
    for _ in $(seq 1 120); do
      if (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null; then exit 0; fi
      if ! kill -0 "$(cat "$dir/broker.pid")" 2>/dev/null; then
        echo "broker.sh: broker exited; see $dir/broker.log" >&2; exit 1
      fi
      sleep 0.25
    done
    echo "broker.sh: broker did not open port $port within 30 s" >&2
    exit 1
    ;;
  stop|kill)
    [ -f "$dir/broker.pid" ] || exit 0
    pid="$(cat "$dir/broker.pid")"
    if [ "$cmd" = kill ]; then
      kill -KILL "$pid" 2>/dev/null || true
    else
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    rm -f "$dir/broker.pid"
    ;;
  *) echo "usage: broker.sh start|stop|kill DIR [PORT]" >&2; exit 2 ;;
esac
