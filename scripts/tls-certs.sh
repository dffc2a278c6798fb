#!/usr/bin/env bash
# Test certificates for TLS (MockBroker tests and the real-broker TLS cluster), with openssl:
#
#   scripts/tls-certs.sh DIR
#
# writes into DIR (PEM, EC P-256 keys in PKCS#8, valid for 100 years):
#   ca.pem                 a test CA
#   server.pem server.key  a server certificate from that CA for 127.0.0.1, ::1 and localhost
#   client.pem client.key  a client certificate from that CA (mutual TLS)
#   other-ca.pem           another CA that signed nothing here (the "wrong CA" of tests)
#
# tests/data/tls/ holds the output of this script (committed, so tests need no openssl).
# Test material only: the keys are not secret.
set -euo pipefail
dir=${1:?usage: $0 DIR}
mkdir -p "$dir"
cd "$dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
days=36500

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

ca() { # NAME CN
  key "$tmp/$1.key"
  openssl req -x509 -new -key "$tmp/$1.key" -days $days -subj "/CN=$2" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$1.pem"
}

leaf() { # NAME CN EXTFILE
  key "$1.key"
  openssl req -new -key "$1.key" -subj "/CN=$2" -out "$tmp/$1.csr"
  openssl x509 -req -in "$tmp/$1.csr" -CA ca.pem -CAkey "$tmp/ca.key" -CAcreateserial \
    -CAserial "$tmp/ca.srl" -days $days -extfile "$3" -out "$1.pem" 2>/dev/null
}

ca ca "rocketmq-mio test CA"
ca other-ca "rocketmq-mio other test CA"
cat >"$tmp/server.ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost
EXT
cat >"$tmp/client.ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth
subjectAltName=DNS:rocketmq-mio-test-client
EXT
leaf server "localhost" "$tmp/server.ext"
leaf client "rocketmq-mio-test-client" "$tmp/client.ext"
chmod 644 ./*.pem ./*.key
