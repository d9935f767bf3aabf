#!/usr/bin/env python3
"""Offline DKIM verifier, independent of the Rust code under test.

Verifies every DKIM-Signature field of each message with dkimpy, answering
the key lookups from local files instead of DNS.

Usage:
    dkim_verify.py --key SELECTOR=path/to/record.txt [--key ...] file.eml [...]

Each record file holds the TXT value published at
<selector>._domainkey.<domain>, e.g. "v=DKIM1; k=rsa; p=MIIB...". A key is
matched by selector for any d= domain, unless the --key is given as
SELECTOR._domainkey.DOMAIN=path, which matches that exact name only.

Prints one line per signature:
    FILE IDX ALGO PASS|FAIL h=from:to:... s=SELECTOR d=DOMAIN [reason]
and exits 1 if any signature fails or a file has none, 2 on usage errors,
3 if dkimpy or PyNaCl (needed for ed25519-sha256) is missing.

Needs: pip install dkimpy pynacl (or Debian's python3-dkim python3-nacl).
"""

import argparse
import logging
import re
import sys

try:
    import dkim
    import dkim.util
    import nacl.signing  # noqa: F401  (dkimpy's Ed25519 support)
except ImportError as e:  # pragma: no cover - environment problem
    print(
        f"dkim_verify.py: {e}; run `pip install dkimpy pynacl`",
        file=sys.stderr,
    )
    sys.exit(3)


def load_keys(specs):
    """Map each --key spec to (selector, exact DNS name or None, record)."""
    keys = []
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"dkim_verify.py: --key wants SELECTOR=FILE, got {spec!r}")
        with open(path, "rb") as f:
            record = b"".join(line.strip() for line in f.read().splitlines())
        name = name.lower().rstrip(".")
        if "._domainkey." in name:
            keys.append((name.split(".", 1)[0], name, record))
        else:
            keys.append((name, None, record))
    return keys


def make_dnsfunc(keys):
    def dnsfunc(qname, timeout=5):
        qname = qname.decode("ascii", "replace").lower().rstrip(".")
        selector = qname.split("._domainkey.", 1)[0]
        for sel, exact, record in keys:
            if exact is not None and exact == qname:
                return record
            if exact is None and sel == selector:
                return record
        return None

    return dnsfunc


def signature_fields(message):
    """The raw values of the DKIM-Signature fields, topmost first."""
    headers, _ = dkim.rfc822_parse(message)
    return [v for (n, v) in headers if n.lower() == b"dkim-signature"]


def tag(tags, name):
    value = tags.get(name, b"?")
    return re.sub(rb"\s+", b"", value).decode("ascii", "replace")


def verify_file(path, dnsfunc):
    with open(path, "rb") as f:
        message = f.read()
    fields = signature_fields(message)
    if not fields:
        print(f"{path} - - FAIL no DKIM-Signature field")
        return False
    ok = True
    for idx, raw in enumerate(fields):
        try:
            tags = dkim.util.parse_tag_value(raw)
        except dkim.util.InvalidTagValueList as e:
            print(f"{path} {idx} ? FAIL unparsable signature ({e})")
            ok = False
            continue
        # h= as the signer wrote it, lower-cased, whitespace removed.
        h = tag(tags, b"h").lower()
        algo = tag(tags, b"a")
        reason = ""
        try:
            passed = dkim.DKIM(message, minkey=1024).verify(idx=idx, dnsfunc=dnsfunc)
            if not passed:
                reason = "signature does not verify"
        except dkim.DKIMException as e:
            passed = False
            reason = str(e)
        verdict = "PASS" if passed else "FAIL"
        line = f"{path} {idx} {algo} {verdict} h={h} s={tag(tags, b's')} d={tag(tags, b'd')}"
        if reason:
            line += f" ({reason})"
        print(line)
        ok = ok and passed
    return ok


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="SELECTOR=FILE",
        help="TXT record value for a selector (repeatable)",
    )
    parser.add_argument("files", nargs="+", metavar="file.eml")
    args = parser.parse_args()
    if not args.key:
        parser.error("give at least one --key SELECTOR=FILE")
    # dkimpy logs failures itself; the one-line verdicts are enough.
    logging.basicConfig(level=logging.CRITICAL)
    dnsfunc = make_dnsfunc(load_keys(args.key))
    results = [verify_file(path, dnsfunc) for path in args.files]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
