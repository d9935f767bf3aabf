#!/usr/bin/env bash
# Speed figures for the README, each printed beside a reference run on the
# same machine. Not a test: nothing here fails on a slow machine.
#
#   bash benches/run.sh            # everything (about 5 minutes on 2 cores)
#   QUICK=1 bash benches/run.sh    # skip the 200k-recipient memory run
#
# Needs Postfix's smtp-sink and smtp-source (Debian package `postfix`); the
# script installs it when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

if ! command -v smtp-sink >/dev/null 2>&1 && [ ! -x /usr/sbin/smtp-sink ]; then
  echo "== installing postfix for smtp-sink / smtp-source"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix >/dev/null
fi
PATH=$PATH:/usr/sbin

cargo build --release --quiet
bin=${CARGO_TARGET_DIR:-$root/target}/release/briefing
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

now_ns() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

echo "== cold preview of the sample issue (whole process, median of 10)"
for cmd in "$bin --config $root/config.toml preview issues/2025-01-17/issue.toml --out $work/previews" "true"; do
  for _ in $(seq 10); do
    t0=$(now_ns); $cmd >/dev/null; t1=$(now_ns)
    echo $(( (t1 - t0) / 1000 ))
  done | median > "$work/median"
  printf '  %-22s %8.1f ms\n' "$(basename "${cmd%% *}")" "$(awk '{print $1/1000}' "$work/median")"
done
echo "  (target: preview under 30 ms; 'true' is the cost of starting any process here)"

echo "== per-recipient personalisation (cargo bench --bench compose)"
cargo bench --quiet --bench compose 2>/dev/null | sed 's/^/  /'

# --- SMTP throughput against Postfix's smtp-sink --------------------------
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
smtp-sink -u nobody -c 127.0.0.1:"$port" 1000 >/dev/null 2>&1 &
sink=$!
python3 - "$port" <<'EOF'
import socket, sys, time
for _ in range(200):
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2).close(); break
    except OSError:
        time.sleep(0.05)
EOF

gen_list() { # gen_list N FILE
  python3 - "$1" "$2" <<'EOF'
import sys
n, path = int(sys.argv[1]), sys.argv[2]
with open(path, "w") as f:
    f.write("email,name,company\n")
    for i in range(n):
        f.write(f"reader{i}@example.org,Reader {i},Firma {i % 97} GmbH\n")
EOF
}

write_config() { # write_config DIR LIST POOL [nodkim]
  sed -e "s|^lists = .*|lists = [\"$2\"]|" \
      -e "s|^ledger = .*|ledger = \"$1/ledger.sqlite\"|" \
      -e "s|^suppressed = .*|suppressed = \"$1/none.csv\"|" \
      -e "s|^url = \"outbox:outbox\"|url = \"smtp://127.0.0.1:$port?tls=none\"|" \
      -e "s|^pool_size = .*|pool_size = $3|" \
      "$root/config.toml" > "$1/config.toml"
  [ "${4:-}" = nodkim ] && return 0
  cat >> "$1/config.toml" <<EOF

[dkim]
domain = "briefing.example.org"
rsa_selector = "rsa"
rsa_key_file = "$root/tests/fixtures/dkim/rsa2048.pem"
EOF
}

run_send() { # run_send DIR -> prints "seconds rss_kb"
  ( cd "$root" && BRIEFING_UNSUBSCRIBE_SECRET=bench BRIEFING_NOW=2025-01-16T12:00:00Z \
      /usr/bin/time -f '%e %M' -o "$1/time" "$bin" --config "$1/config.toml" \
      send issues/2025-01-17/issue.toml --yes > "$1/out" 2>&1 ) || { cat "$1/out"; exit 1; }
  cat "$1/time"
}

n=20000
size=$(wc -c < "$work/previews/2025-01-17.eml")
echo "== SMTP to smtp-sink on loopback: $n recipients, ~$size bytes a message, 8 connections"
mkdir -p "$work/b20k"; gen_list $n "$work/b20k/list.csv"; write_config "$work/b20k" "$work/b20k/list.csv" 8
read -r secs rss < <(run_send "$work/b20k")
ours=$(awk -v n=$n -v s="$secs" 'BEGIN {printf "%.0f", n/s}')
mkdir -p "$work/nodkim"; write_config "$work/nodkim" "$work/b20k/list.csv" 8 nodkim
read -r secs2 _ < <(run_send "$work/nodkim")
nodkim=$(awk -v n=$n -v s="$secs2" 'BEGIN {printf "%.0f", n/s}')
t0=$(now_ns)
smtp-source -s 8 -m $n -l "$size" -f news@briefing.example.org -t reader@example.org 127.0.0.1:"$port"
t1=$(now_ns)
ref=$(awk -v n=$n -v ns=$((t1 - t0)) 'BEGIN {printf "%.0f", n/(ns/1e9)}')
printf '  %-44s %6s messages/s\n' "briefing send (personalised, DKIM RSA-2048)" "$ours"
printf '  %-44s %6s messages/s\n' "briefing send (personalised, no DKIM)" "$nodkim"
printf '  %-44s %6s messages/s\n' "smtp-source (same size, same connections)" "$ref"
awk -v a="$ours" -v c="$nodkim" -v b="$ref" 'BEGIN {printf "  ratio %.0f%% with DKIM, %.0f%% without (target >= 80%%)\n", 100*a/b, 100*c/b}'
grep summary "$work/b20k/out" | sed 's/^/  /'

echo "== peak memory of briefing send by list size (same sink)"
printf '  %-12s %10s\n' "recipients" "peak RSS"
printf '  %-12s %8s MB\n' "$n" "$((rss / 1024))"
sizes="10000 200000"
[ -n "${QUICK:-}" ] && sizes="10000"
for m in $sizes; do
  d="$work/m$m"; mkdir -p "$d"; gen_list "$m" "$d/list.csv"; write_config "$d" "$d/list.csv" 8
  read -r secs rss < <(run_send "$d")
  printf '  %-12s %8s MB   (%.0f messages/s)\n' "$m" "$((rss / 1024))" "$(awk -v n=$m -v s="$secs" 'BEGIN {print n/s}')"
done
kill "$sink" 2>/dev/null || true
