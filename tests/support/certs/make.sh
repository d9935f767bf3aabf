#!/usr/bin/env bash
# Regenerates the test PKI used by tests/support/smtp_server.py --starttls:
#
#   ca.pem       self-signed test CA (the trust anchor the tests' clients use)
#   server.pem   leaf certificate for DNS:localhost and IP:127.0.0.1, signed by the CA
#   server.key   the leaf's private key (unencrypted PKCS#8)
#
# Validity: from one day before this runs (tolerates clock skew between
# machines) for 20 years. Keys are ECDSA P-256. The CA's private key is
# thrown away: nothing else is ever signed with it. These files are for
# tests only; never trust ca.pem anywhere else.
#
# Usage: bash tests/support/certs/make.sh   (from any directory)
set -euo pipefail

cd "$(dirname "$0")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

start=$(date -u -d '1 day ago' +%Y%m%d%H%M%SZ)
end=$(date -u -d '1 day ago + 20 years' +%Y%m%d%H%M%SZ)

mkdir "$work/db"
touch "$work/db/index.txt"
openssl rand -hex 16 >"$work/db/serial"
cat >"$work/openssl.cnf" <<CNF
[ca]
default_ca = test_ca
[test_ca]
database = $work/db/index.txt
new_certs_dir = $work/db
serial = $work/db/serial
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = none
[policy_any]
commonName = supplied
[req]
distinguished_name = dn
prompt = no
[dn]
CN = placeholder
[v3_ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[v3_server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
CNF

sign() { # sign CSR OUT EXTENSIONS [extra openssl ca args...]
    local csr=$1 out=$2 ext=$3
    shift 3
    openssl ca -batch -notext -config "$work/openssl.cnf" -in "$csr" -out "$out" \
        -startdate "$start" -enddate "$end" -extensions "$ext" \
        "$@" 2>"$work/ca.log" || { cat "$work/ca.log" >&2; exit 1; }
}

# Test CA (self-signed)
openssl ecparam -name prime256v1 -genkey -noout -out "$work/ca.key"
openssl req -new -config "$work/openssl.cnf" -key "$work/ca.key" \
    -subj "/CN=briefing test CA (tests only, do not trust)" -out "$work/ca.csr"
sign "$work/ca.csr" ca.pem v3_ca -selfsign -keyfile "$work/ca.key"

# Server certificate for localhost / 127.0.0.1
openssl ecparam -name prime256v1 -genkey -noout -out "$work/server.ec.key"
openssl pkcs8 -topk8 -nocrypt -in "$work/server.ec.key" -out server.key
chmod 644 server.key
openssl req -new -config "$work/openssl.cnf" -key server.key \
    -subj "/CN=localhost" -out "$work/server.csr"
sign "$work/server.csr" server.pem v3_server -cert ca.pem -keyfile "$work/ca.key"

openssl verify -CAfile ca.pem server.pem
