#!/usr/bin/env bash
# Runs every check and test of briefing: formatting, lints, unit, snapshot,
# CLI, real-SMTP, DKIM, PostgreSQL-ledger and browser tests. Installs what the tests need on a
# fresh Debian machine (needs root for apt, as CI has).
set -euo pipefail
cd "$(dirname "$0")/.."

need_py() { python3 -c "import $1" 2>/dev/null; }
if ! need_py aiosmtpd || ! need_py dkim || ! need_py nacl || ! need_py feedparser || ! need_py icalendar; then
  echo "== installing Python test tools (aiosmtpd: SMTP test server; dkimpy: independent DKIM verifier; feedparser: Atom check; icalendar: .ics check)"
  python3 -m pip install --quiet --disable-pip-version-check aiosmtpd dkimpy pynacl feedparser icalendar
fi
if ! command -v chromium >/dev/null 2>&1 && [ -z "${BRIEFING_SKIP_BROWSER:-}" ]; then
  echo "== installing Chromium for the layout test"
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
fi

# The PostgreSQL ledger tests start a throwaway cluster of their own
# (initdb/pg_ctl in a temporary folder); they need the server binaries only.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
  echo "== installing PostgreSQL for the ledger tests"
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
fi

if [ ! -f tests/.node/node_modules/axe-core/axe.min.js ] && [ -z "${BRIEFING_SKIP_BROWSER:-}" ]; then
  echo "== installing axe-core (WCAG rules) for the accessibility test"
  npm install --silent --no-audit --no-fund --prefix tests/.node axe-core@4
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --all-targets --locked -- -D warnings
echo "== cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --locked 2>&1 | tee "$log"
# One closing line over all suites (cargo prints one per test binary).
awk '/^test result:/ { p += $4; f += $6; i += $8 } END { printf "total: %d passed, %d failed, %d skipped\n", p, f, i }' "$log"
