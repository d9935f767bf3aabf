#!/usr/bin/env bash
# One-click unsubscribe throughput of `briefing serve`, with GET /healthz on
# the same server as the reference (what axum and the machine manage with no
# ledger work at all). Not a test: nothing here fails on a slow machine.
#
#   bash benches/unsubscribe.sh
#   DURATION=30s THREADS=4 CONNECTIONS=64 bash benches/unsubscribe.sh
#
# The ledger holds 10,000 recipients with real tokens (HMAC-SHA256 over the
# list id and address, as `briefing send` records them), written straight
# into SQLite, since a real send of 10,000 messages to the outbox would
# write a gigabyte of .eml files first. The server logs every request to
# stderr, as in production; here that goes to a file.
#
# Needs wrk (Debian package `wrk`; installed when missing) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
duration=${DURATION:-10s}
threads=${THREADS:-2}
connections=${CONNECTIONS:-32}
recipients=${RECIPIENTS:-10000}

if ! command -v wrk >/dev/null 2>&1; then
  echo "== installing wrk"
  if [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
  else
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
  fi
fi

cargo build --release --quiet
bin=$root/target/release/briefing
work=$(mktemp -d)
server=
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$work"' EXIT

unset BRIEFING_NOW BRIEFING_CONFIG BRIEFING_UNSUBSCRIBE_PREVIOUS_SECRETS
export BRIEFING_UNSUBSCRIBE_SECRET="bench-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
sed -e "s#^ledger = .*#ledger = \"$work/briefing.sqlite\"#" config.toml > "$work/config.toml"

echo "== ledger with $recipients recipients"
"$bin" --config "$work/config.toml" suppress list >/dev/null 2>&1   # creates the schema
python3 - "$work/config.toml" "$work/briefing.sqlite" "$work/tokens.txt" "$recipients" <<'PY'
import base64, hashlib, hmac, os, sqlite3, sys, tomllib
config, ledger, tokens_file, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
list_id = tomllib.load(open(config, "rb"))["sender"]["list_id"]
key = os.environ["BRIEFING_UNSUBSCRIBE_SECRET"].encode()
def token(email):
    mac = hmac.new(key, f"{list_id}\n{email}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
rows = []
for i in range(n):
    email = f"reader{i:05}@example.org"
    rows.append(("bench", "real", email, email, "", "", "sent", token(email)))
db = sqlite3.connect(ledger)
db.executemany("INSERT INTO deliveries (issue, kind, email_key, email, name, fields, state, token) VALUES (?,?,?,?,?,?,?,?)", rows)
db.commit()
with open(tokens_file, "w") as f:
    f.write("\n".join(r[7] for r in rows) + "\n")
PY

mkfifo "$work/stdout"
"$bin" --config "$work/config.toml" serve --listen 127.0.0.1:0 >"$work/stdout" 2>"$work/serve.log" &
server=$!
exec 3<"$work/stdout"
read -r first <&3   # "listening on http://ADDR": the server is ready
addr=${first#listening on http://}
token=$(head -n 1 "$work/tokens.txt")

# The token must really unsubscribe, or the figures below measure 400s.
python3 - "http://$addr/unsubscribe/$token" <<'PY'
import sys, urllib.request
req = urllib.request.Request(sys.argv[1], data=b"List-Unsubscribe=One-Click", method="POST",
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
status = urllib.request.urlopen(req).status
assert status == 200, status
PY

run() {
  local label=$1; shift
  local line
  line=$(wrk -t"$threads" -c"$connections" -d"$duration" -s benches/unsubscribe.lua "$@" | grep '^RESULT')
  # RESULT requests/s=N p50=Xms p99=Yms requests=N errors=N
  set -- $line
  printf '  %-44s %8s req/s   p50 %9s   p99 %9s   %s\n' "$label" "${2#requests/s=}" "${3#p50=}" "${4#p99=}" "$6"
}

echo "== wrk: $threads threads, $connections connections, $duration each, on $(nproc) cores"
run "POST one-click, one token (repeat: reads)" "http://$addr/unsubscribe/$token"
run "POST one-click, $recipients tokens round-robin" "http://$addr/unsubscribe/$token" -- "$work/tokens.txt"
run "reference: GET /healthz" "http://$addr/healthz" -- get
suppressed=$("$bin" --config "$work/config.toml" suppress list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
echo "  suppressed afterwards: $suppressed of $recipients (the round-robin run wrote each once)"
echo "  (target: at least 2,000 one-click POST/s)"
