#!/usr/bin/env bash
# Speed figures for the README, each printed beside a reference run on the
# same machine. Not a test: nothing here fails on a slow machine.
#
#   bash benches/run.sh            # everything (about 5 minutes on 2 cores)
#   QUICK=1 bash benches/run.sh    # skip the 1M-recipient memory run
#   FULL=1 bash benches/run.sh     # also a real 1M send (about 15 minutes)
#   SENDS_ONLY=1, ROUNDS=N, N=recipients: the throughput part only / rounds / size
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

"$bin" --config "$root/config.toml" preview issues/2025-01-17/issue.toml --out "$work/previews" >/dev/null
if [ -z "${SENDS_ONLY:-}" ]; then
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
fi

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
    f.write("email,name,company,plan\n")
    for i in range(n):
        plan = "premium" if i % 3 == 0 else "free"
        f.write(f"reader{i}@example.org,Reader {i},Firma {i % 97} GmbH,{plan}\n")
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

run_send() { # run_send DIR [extra send flags] -> prints "seconds rss_kb cpu_seconds"
  local d=$1; shift
  ( cd "$root" && BRIEFING_UNSUBSCRIBE_SECRET=bench BRIEFING_NOW=2025-01-16T12:00:00Z \
      /usr/bin/time -f '%e %M %U %S' -o "$d/time" "$bin" --config "$d/config.toml" \
      send issues/2025-01-17/issue.toml --yes "$@" > "$d/out" 2>&1 ) || fail_send "$d"
  awk '{print $1, $2, $3 + $4}' "$d/time"
}
fail_send() { echo "briefing send failed:" >&2; cat "$1/out" >&2; exit 1; }

# Prints "messages/s cpu_ms_per_message" for N messages in SECS with CPU seconds.
rate() { awk -v n="$1" -v s="$2" -v c="$3" 'BEGIN {printf "%.0f %.3f\n", n/s, 1000*c/n}'; }

n=${N:-20000}
rounds=${ROUNDS:-3}
size=$(wc -c < "$work/previews/2025-01-17.eml")
echo "== SMTP to smtp-sink on loopback: $n recipients, ~$size bytes a message, 8 connections, median of $rounds rounds"
echo "   (smtp-source -d reuses its 8 connections, as briefing does: like with like)"
echo "   load before: $(uptime | sed 's/.*load average/load average/')"
mkdir -p "$work/b20k" "$work/nodkim"; gen_list $n "$work/b20k/list.csv"
write_config "$work/b20k" "$work/b20k/list.csv" 8
write_config "$work/nodkim" "$work/b20k/list.csv" 8 nodkim
: > "$work/r.dkim"; : > "$work/r.nodkim"; : > "$work/r.ref"
for _ in $(seq "$rounds"); do
  rm -f "$work"/b20k/ledger.sqlite* "$work"/nodkim/ledger.sqlite*
  read -r secs _ cpu < <(run_send "$work/b20k"); rate $n "$secs" "$cpu" >> "$work/r.dkim"
  read -r secs _ cpu < <(run_send "$work/nodkim"); rate $n "$secs" "$cpu" >> "$work/r.nodkim"
  /usr/bin/time -f '%e %M %U %S' -o "$work/time.ref" \
    smtp-source -d -s 8 -m $n -l "$size" -f news@briefing.example.org -t reader@example.org 127.0.0.1:"$port"
  read -r secs _ u s < "$work/time.ref"; rate $n "$secs" "$(awk -v u="$u" -v s="$s" 'BEGIN {print u+s}')" >> "$work/r.ref"
done
col() { cut -d' ' -f"$1" "$2" | median; }
ours=$(col 1 "$work/r.dkim"); nodkim=$(col 1 "$work/r.nodkim"); ref=$(col 1 "$work/r.ref")
printf '  %-46s %8s %14s\n' "" "messages/s" "CPU/message"
printf '  %-46s %8s %11s ms   (rounds: %s)\n' "briefing send (personalised, DKIM RSA-2048)" "$ours" "$(col 2 "$work/r.dkim")" "$(cut -d' ' -f1 "$work/r.dkim" | tr '\n' ' ')"
printf '  %-46s %8s %11s ms   (rounds: %s)\n' "briefing send (personalised, no DKIM)" "$nodkim" "$(col 2 "$work/r.nodkim")" "$(cut -d' ' -f1 "$work/r.nodkim" | tr '\n' ' ')"
printf '  %-46s %8s %11s ms   (rounds: %s)\n' "smtp-source -d (same size, same connections)" "$ref" "$(col 2 "$work/r.ref")" "$(cut -d' ' -f1 "$work/r.ref" | tr '\n' ' ')"
awk -v a="$ours" -v c="$nodkim" -v b="$ref" 'BEGIN {printf "  ratio %.0f%% with DKIM (target >= 80%%), %.0f%% without (target >= 95%%)\n", 100*a/b, 100*c/b}'
echo "  targets for CPU per message: <= 0.45 ms with DKIM, <= 0.15 ms without"
grep summary "$work/b20k/out" | sed 's/^/  /'
echo "   load after: $(uptime | sed 's/.*load average/load average/')"

[ -n "${SENDS_ONLY:-}" ] && exit 0
# Seconds from the start of `send --limit 1` to the first message a sink of
# its own counts (smtp-sink -c), so the list import's head start shows.
first_message() { # first_message DIR
  local p2; p2=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  sed "s|127.0.0.1:$port|127.0.0.1:$p2|" "$1/config.toml" > "$1/first.toml"
  rm -f "$1"/ledger.sqlite*
  ( cd "$root" && BRIEFING_UNSUBSCRIBE_SECRET=bench BRIEFING_NOW=2025-01-16T12:00:00Z \
      python3 "$root/benches/first_message.py" "$bin" "$1/first.toml" "$p2" )
  rm -f "$1"/ledger.sqlite*
}

echo "== peak memory by list size (same sink, no DKIM; dry runs build every message, send nothing)"
printf '  %-12s %-9s %10s %12s %14s\n' "recipients" "mode" "peak RSS" "rows/s" "1st message"
sizes="10000 100000 1000000"
[ -n "${QUICK:-}" ] && sizes="10000 100000"
for m in $sizes; do
  # Without DKIM: signing a million messages would take a quarter of an
  # hour and says nothing about memory.
  d="$work/m$m"; mkdir -p "$d"; gen_list "$m" "$d/list.csv"; write_config "$d" "$d/list.csv" 8 nodkim
  read -r secs rss _ < <(run_send "$d" --dry-run)
  first="-"
  [ "$m" -eq 1000000 ] && first="$(first_message "$d") s"
  printf '  %-12s %-9s %7s MB %12.0f %14s\n' "$m" "dry run" "$((rss / 1024))" "$(awk -v n=$m -v s="$secs" 'BEGIN {print n/s}')" "$first"
  # A real 1M send takes a quarter of an hour here; FULL=1 includes it.
  if [ "$m" -lt 1000000 ] || [ -n "${FULL:-}" ]; then
    read -r secs rss _ < <(run_send "$d")
    printf '  %-12s %-9s %7s MB %12.0f\n' "$m" "send" "$((rss / 1024))" "$(awk -v n=$m -v s="$secs" 'BEGIN {print n/s}')"
  fi
done
kill "$sink" 2>/dev/null || true
