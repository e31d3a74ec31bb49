#!/usr/bin/env bash
# A single-node Apache Kafka 4.x broker (KRaft, broker+controller) on 127.0.0.1 for the tests,
# run from the Maven artifacts that scripts/setup.sh put in tests/kafka/.libs.
#   broker.sh start DIR PORT          format DIR on first use, start, wait until the port answers
#   broker.sh start-secure DIR PORT   the same with a SASL_SSL client listener on PORT (see below)
#   broker.sh stop DIR                SIGTERM, then SIGKILL after 10 s
#   broker.sh kill DIR                SIGKILL (a crash); DIR keeps the data for a restart
#
# start-secure: the only client listener is SASL_SSL on 127.0.0.1:PORT with the mechanisms PLAIN,
# SCRAM-SHA-256 and SCRAM-SHA-512, each accepting the user $SECURE_USER / $SECURE_PASSWORD below;
# the controller listens on PORT+1 and the inter-broker listener (PLAINTEXT) on PORT+2, both on
# loopback. A TLS key pair is made for each new DIR: a self-signed CA (DIR/ca.pem, the file for
# the client's CA setting) and a server certificate for 127.0.0.1 / localhost in a PKCS12
# keystore; DIR/untrusted-ca.pem is a second CA that signed nothing (for trust-failure tests).
# DIR/address holds the client listener's host:port. Topics are not auto-created.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
libs="$here/.libs"
cmd="${1:?usage: broker.sh start|start-secure|stop|kill DIR [PORT]}"
dir="${2:?missing DIR}"

# The secured broker's test account (every mechanism) and keystore password.
SECURE_USER=naap
SECURE_PASSWORD=naap-secret
KEYSTORE_PASSWORD=naap-keystore

# Formats DIR's data folder on first use; further arguments go to kafka-storage format.
format_once() {
  if [ ! -f "$dir/data/meta.properties" ]; then
    # A random Kafka Uuid in base64url. Like Kafka's Uuid.randomUuid, never one that starts
    # with "-": kafka-storage would read it as an option and fail ("--cluster-id/-t: expected
    # one argument"), one format in 64.
    cluster_id="$(python3 -c '
import base64, uuid
while True:
    text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    if not text.startswith("-"):
        print(text)
        break
')"
    if ! java -cp "$libs/*" kafka.tools.StorageTool format -t "$cluster_id" \
      -c "$dir/server.properties" "$@" > "$dir/format.log" 2>&1; then
      echo "broker.sh: kafka-storage format failed; the end of $dir/format.log:" >&2
      tail -n 20 "$dir/format.log" >&2
      exit 1
    fi
  fi
}

# Starts the broker on DIR/server.properties and waits until PORT answers.
launch() {
  local port="$1"
  # The readiness check below only connects to PORT: something else answering there would pass
  # for our broker. Refuse a port that is taken before starting.
  if (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "broker.sh: port $port is already in use on 127.0.0.1" >&2; exit 1
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
}

# A CA and a server certificate signed by it (EC P-256: quick to make) in DIR/tls, the keystore
# in PKCS12, the CA's certificate in DIR/ca.pem. Made once per DIR.
make_tls() {
  local tls="$dir/tls"
  [ -f "$tls/server.p12" ] && return 0
  mkdir -p "$tls"
  local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  cat > "$tls/ca.cnf" <<CNF
[req]
distinguished_name = dn
x509_extensions = ca
prompt = no
[dn]
CN = naap-loadtest test CA
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
CNF
  cat > "$tls/server.ext" <<EXT
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
authorityKeyIdentifier = keyid
EXT
  {
    openssl req -x509 "${ec[@]}" -days 7 -config "$tls/ca.cnf" \
      -keyout "$tls/ca.key" -out "$tls/ca.pem"
    openssl req -x509 "${ec[@]}" -days 7 -config "$tls/ca.cnf" \
      -keyout "$tls/untrusted-ca.key" -out "$tls/untrusted-ca.pem"
    openssl req "${ec[@]}" -subj "/CN=127.0.0.1" -keyout "$tls/server.key" -out "$tls/server.csr"
    openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" \
      -CAcreateserial -days 7 -extfile "$tls/server.ext" -out "$tls/server.pem"
    openssl pkcs12 -export -name broker -in "$tls/server.pem" -inkey "$tls/server.key" \
      -certfile "$tls/ca.pem" -passout "pass:$KEYSTORE_PASSWORD" -out "$tls/server.p12"
  } > "$tls/openssl.log" 2>&1 || { echo "broker.sh: openssl failed; see $tls/openssl.log" >&2; exit 1; }
  cp "$tls/ca.pem" "$dir/ca.pem"
  cp "$tls/untrusted-ca.pem" "$dir/untrusted-ca.pem"
}

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
    format_once
    launch "$port"
    ;;
  start-secure)
    port="${3:?missing PORT}"
    [ -d "$libs" ] || { echo "broker.sh: $libs missing: run scripts/setup.sh" >&2; exit 2; }
    mkdir -p "$dir"
    make_tls
    jaas_plain="org.apache.kafka.common.security.plain.PlainLoginModule required"
    jaas_scram="org.apache.kafka.common.security.scram.ScramLoginModule required;"
    cat > "$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$((port + 1))
listeners=SASL_SSL://127.0.0.1:${port},CONTROLLER://127.0.0.1:$((port + 1)),INTERNAL://127.0.0.1:$((port + 2))
advertised.listeners=SASL_SSL://127.0.0.1:${port},INTERNAL://127.0.0.1:$((port + 2))
controller.listener.names=CONTROLLER
inter.broker.listener.name=INTERNAL
listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT,INTERNAL:PLAINTEXT
listener.name.sasl_ssl.sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_ssl.plain.sasl.jaas.config=${jaas_plain} user_${SECURE_USER}="${SECURE_PASSWORD}";
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=${jaas_scram}
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=${jaas_scram}
ssl.keystore.type=PKCS12
ssl.keystore.location=$dir/tls/server.p12
ssl.keystore.password=${KEYSTORE_PASSWORD}
ssl.key.password=${KEYSTORE_PASSWORD}
ssl.client.auth=none
log.dirs=$dir/data
num.partitions=3
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
PROPS
    # KRaft keeps SCRAM credentials in the metadata log: they are bootstrapped at format time.
    format_once \
      --add-scram "SCRAM-SHA-256=[name=${SECURE_USER},password=${SECURE_PASSWORD}]" \
      --add-scram "SCRAM-SHA-512=[name=${SECURE_USER},password=${SECURE_PASSWORD}]"
    echo "127.0.0.1:${port}" > "$dir/address"
    launch "$port"
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
  *) echo "usage: broker.sh start|start-secure|stop|kill DIR [PORT]" >&2; exit 2 ;;
esac
