#!/bin/sh
# Screenshot a rendered email the way tests/layout_chromium.rs measures it,
# for a human look at light, dark and forced-dark rendering.
#
#   [HEIGHT=2400] tests/support/chromium.sh EMAIL.html WIDTH OUT.png [light|dark|forced]
#
# Headless Chromium opens no window narrower than 500 px, so the email is
# shown in an iframe WIDTH px wide inside a wider page.
set -eu

if [ $# -lt 3 ]; then
    echo "usage: $0 EMAIL.html WIDTH OUT.png [light|dark|forced]" >&2
    exit 2
fi
email=$(realpath "$1")
width=$2
out=$(realpath -m "$3")
scheme=${4:-light}

browser=/usr/bin/chromium
[ -x "$browser" ] || browser=$(command -v chromium || true)
if [ -z "$browser" ]; then
    echo "chromium not found: apt-get install -y chromium" >&2
    exit 1
fi

case $scheme in
light) extra="--blink-settings=preferredColorScheme=1" ;;
dark) extra="--blink-settings=preferredColorScheme=0" ;;
# Approximates the colour inversion of Gmail's apps and Outlook.
forced) extra="--force-dark-mode --enable-features=WebContentsForceDark" ;;
*)
    echo "scheme must be light, dark or forced" >&2
    exit 2
    ;;
esac

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
height=${HEIGHT:-2400}
cat >"$tmp/page.html" <<EOF
<!DOCTYPE html><html><body style="margin:0">
<iframe src="file://$email" style="width:${width}px;height:${height}px;border:0"></iframe>
</body></html>
EOF

page_width=$((width < 500 ? 500 : width))
# shellcheck disable=SC2086 # $extra holds several flags
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --hide-scrollbars --user-data-dir="$tmp/profile" $extra \
    --window-size="$page_width,$height" --virtual-time-budget=2000 \
    --screenshot="$out" "file://$tmp/page.html" 2>/dev/null
echo "$out"
