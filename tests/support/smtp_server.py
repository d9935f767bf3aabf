#!/usr/bin/env python3
"""A real SMTP server for briefing's integration tests (aiosmtpd based).

Started by tests/support/mod.rs as a subprocess:

    python3 tests/support/smtp_server.py --port 0 --maildir DIR [options]

Protocol with the parent
------------------------
* Listens on 127.0.0.1 only. ``--port 0`` picks a free port.
* Prints exactly one line ``READY <port>`` to stdout (flushed) once the
  listening socket accepts connections (or, with ``--refuse``, once the port
  is known); after that, stdout carries only the answers to control commands.
* Logs go to stderr only (``--verbose`` for a per-command protocol trace).
* With ``--exit-on-stdin-eof`` the server exits when its stdin reaches EOF, so
  it cannot outlive a test process that dies without killing it.
* Control channel: each line on stdin is a command, applied before the
  server answers ``OK <command>`` on stdout (so the test knows it is in
  force, without sleeping):
    refuse           close the listening socket: connections are refused
    accept           listen again on the same port
    greet-421 on|off answer every new connection ``421 4.3.2`` at greeting
    rcpt-451 on|off  answer every RCPT ``451 4.3.0 Try again later``
  Anything else gets ``ERR <line>``.
* If aiosmtpd is missing it prints a hint to stderr and exits with status 3
  before printing READY.

Storage
-------
Every accepted message (one that gets ``250`` after DATA) is stored as

    DIR/<n>.json   {"mail_from": str, "rcpt_tos": [str], "peer": "ip:port",
                    "tls": bool, "auth_user": str | null}
    DIR/<n>.eml    the DATA bytes exactly as received (CRLF kept, dot-stuffing
                   removed, without the terminating ".\\r\\n")

<n> is a 6-digit, zero-padded sequence number starting at 000001, in the order
the messages were accepted. Both files are written to a temporary name and
renamed; the .json is renamed before the .eml, so a reader that sees
``<n>.eml`` can always read the complete ``<n>.eml`` and ``<n>.json``. Storing
happens before the ``250`` reply is sent, so a client that has seen 250 can
read its message at once.

Limits inherited from aiosmtpd (they make this a strict, realistic server):
a DATA line longer than 1000 octets plus CRLF (RFC 5321 4.5.3.1.6) gets
``500 Line too long`` and the message is not stored; messages over 32 MiB get
``552``. EHLO advertises SIZE, 8BITMIME, SMTPUTF8 and PIPELINING (plus
STARTTLS / AUTH as configured; ``--no-pipelining`` leaves PIPELINING out).

Fault injection
---------------
--tempfail-first FILE   For each address listed in FILE (one per line, compared
                        case-insensitively; blank lines and lines starting with
                        '#' are ignored) the FIRST ``RCPT TO`` naming it gets
                        ``451 4.3.0 Try again later``; every later RCPT for that
                        address succeeds. State is kept in memory for the life
                        of the process, across connections.
--reject FILE           Addresses listed in FILE always get
                        ``550 5.1.1 <addr>: Recipient address rejected: User unknown``
                        at RCPT TO.
--drop-every N          Counts every DATA transaction that reaches the
                        terminating "." (across all connections, 1-based,
                        dropped ones included). When the count is a multiple of
                        N, the server sends NO reply, stores nothing, and
                        resets the TCP connection (SO_LINGER 0 + abort: the
                        client gets ECONNRESET, or EOF on some stacks; with TLS
                        it gets no close_notify). So with N=2: message 1 is
                        stored, message 2 is dropped, its retry (DATA #3) is
                        stored, the next message (DATA #4) is dropped, ...
                        Only that connection is affected; the listener stays up.
--starttls CERT KEY     Offer STARTTLS with the given certificate chain + key.
--implicit-tls CERT KEY TLS from the first byte (smtps, port 465 style).
--require-tls           (needs --starttls) ``MAIL`` before STARTTLS gets
                        ``530 5.7.0 Must issue a STARTTLS command first``.
--auth USER:PASSWORD    Require AUTH (PLAIN or LOGIN) before MAIL
                        (``530 5.7.0 Authentication required``); wrong
                        credentials get ``535 5.7.8 Authentication credentials
                        invalid``. The user is recorded as auth_user.
                        Where AUTH is allowed: with --starttls, only after
                        STARTTLS (aiosmtpd's default auth_require_tls=True: AUTH
                        is not advertised in EHLO before TLS and answers
                        ``538 5.7.11`` there) -- the realistic submission-server
                        setup. Without --starttls, AUTH is allowed in plain
                        text (auth_require_tls=False), which is harmless here
                        because the server only listens on loopback.
--slow-ms N             Wait N ms after the terminating "." before storing the
                        message and replying. If the client disconnects during
                        the wait, the message is NOT stored (no 250 was sent).
--store-then-drop-every N
                        Like --drop-every, but the message IS stored (its
                        .json has ``"dropped": true``) before the connection is
                        reset without a reply: the server has it, the client
                        cannot know.
--drop-at-data-every N  Every N-th DATA command (after RCPT was accepted) resets
                        the connection instead of answering 354: nothing can
                        have been delivered.
--refuse                Start with the listening socket closed (see ``accept``).
--greet-421             Start with greet-421 on.
--rcpt-451              Start with rcpt-451 on.

Every end of data that reaches the server is logged (INFO) as
``END-OF-DATA #<n> rcpt=<addr,...>`` before it is stored, dropped or
delayed, so a test can tell which messages' final "." was written; every
DATA command after accepted recipients as ``DATA-COMMAND rcpt=<addr,...>``
before the server answers it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import socket
import ssl
import struct
import sys
import threading
import warnings

try:
    from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword
except ImportError as exc:  # pragma: no cover - environment problem
    print(
        f"smtp_server.py: cannot import aiosmtpd ({exc}); "
        "run `pip install aiosmtpd` (CI installs it)",
        file=sys.stderr,
        flush=True,
    )
    sys.exit(3)

log = logging.getLogger("smtp_server")

TEMPFAIL_REPLY = "451 4.3.0 Try again later"
REJECT_REPLY = "550 5.1.1 <{addr}>: Recipient address rejected: User unknown"
NEED_TLS_REPLY = "530 5.7.0 Must issue a STARTTLS command first"


def read_address_file(path: str) -> set[str]:
    addrs = set()
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                addrs.add(line.lower())
    return addrs


def peer_text(peer) -> str | None:
    if isinstance(peer, (tuple, list)) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return None if peer is None else str(peer)


class Store:
    """Writes messages as DIR/<n>.json + DIR/<n>.eml, atomically."""

    def __init__(self, maildir: str):
        self.maildir = maildir
        os.makedirs(maildir, exist_ok=True)
        existing = [
            int(name[:-4])
            for name in os.listdir(maildir)
            if name.endswith(".eml") and name[:-4].isdigit()
        ]
        self.next_seq = max(existing, default=0) + 1

    def _write_atomic(self, final: str, data: bytes) -> None:
        tmp = os.path.join(self.maildir, f".{os.path.basename(final)}.tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
        os.replace(tmp, final)

    def save(self, raw: bytes, meta: dict) -> str:
        seq = self.next_seq
        self.next_seq += 1
        stem = os.path.join(self.maildir, f"{seq:06d}")
        self._write_atomic(
            stem + ".json", json.dumps(meta, ensure_ascii=False).encode("utf-8")
        )
        self._write_atomic(stem + ".eml", raw)
        return stem + ".eml"


class Handler:
    def __init__(self, args, store: Store):
        self.store = store
        self.tempfail = (
            read_address_file(args.tempfail_first) if args.tempfail_first else set()
        )
        self.tempfailed: set[str] = set()
        self.reject = read_address_file(args.reject) if args.reject else set()
        self.drop_every = args.drop_every
        self.store_then_drop_every = args.store_then_drop_every
        self.drop_at_data_every = args.drop_at_data_every
        self.data_commands = 0
        self.data_count = 0
        self.slow = args.slow_ms / 1000.0 if args.slow_ms else 0.0
        self.greet_421 = args.greet_421
        self.rcpt_451 = args.rcpt_451
        self.pipelining = not args.no_pipelining

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        # aiosmtpd reads pipelined commands in order but does not say so;
        # advertise it as Postfix does, so clients may pipeline.
        session.host_name = hostname
        if self.pipelining:
            responses.insert(len(responses) - 1, "250-PIPELINING")
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        key = address.lower()
        if self.rcpt_451:
            log.info("RCPT %s: tempfail (rcpt-451 on)", address)
            return TEMPFAIL_REPLY
        if key in self.reject:
            log.info("RCPT %s: rejected (--reject)", address)
            return REJECT_REPLY.format(addr=address)
        if key in self.tempfail and key not in self.tempfailed:
            self.tempfailed.add(key)
            log.info("RCPT %s: first attempt, tempfail (--tempfail-first)", address)
            return TEMPFAIL_REPLY
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.data_count += 1
        n = self.data_count
        log.info("END-OF-DATA #%d rcpt=%s", n, ",".join(envelope.rcpt_tos))
        if self.store_then_drop_every and n % self.store_then_drop_every == 0:
            meta = self.meta(session, envelope)
            meta["dropped"] = True
            path = self.store.save(bytes(envelope.original_content), meta)
            log.warning(
                "DATA #%d stored as %s, then dropping the connection without reply "
                "(--store-then-drop-every %d)",
                n,
                os.path.basename(path),
                self.store_then_drop_every,
            )
            await drop_connection(server)
            return "421 4.4.2 Connection dropped"
        if self.drop_every and n % self.drop_every == 0:
            log.warning(
                "DATA #%d from %s: dropping connection without reply (--drop-every %d)",
                n,
                peer_text(session.peer),
                self.drop_every,
            )
            await drop_connection(server)
            # drop_connection() does not return normally; this is a fallback.
            return "421 4.4.2 Connection dropped"
        if self.slow:
            # Cancelled (and nothing stored) if the client goes away meanwhile.
            await asyncio.sleep(self.slow)
        path = self.store.save(bytes(envelope.original_content), self.meta(session, envelope))
        log.info("DATA #%d stored as %s", n, os.path.basename(path))
        return "250 OK"

    def meta(self, session, envelope) -> dict:
        auth_user = None
        if session.authenticated and isinstance(session.auth_data, LoginPassword):
            auth_user = session.auth_data.login.decode("utf-8", "replace")
        return {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "peer": peer_text(session.peer),
            "tls": session.ssl is not None,
            "auth_user": auth_user,
        }


async def drop_connection(server: SMTP) -> None:
    """Reset the client's TCP connection without a reply, then wait to be cancelled."""
    # After STARTTLS, server.transport is the TLS app transport; the TCP one
    # is kept in _original_transport.
    raw = server._original_transport or server.transport
    if raw is not None:
        sock = raw.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
            except OSError as exc:  # pragma: no cover
                log.warning("SO_LINGER failed: %s", exc)
        raw.abort()
    # abort() schedules connection_lost(), which cancels this handler task.
    await asyncio.sleep(10)


class TestSMTP(SMTP):
    def __init__(self, *args, require_tls: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self._require_tls_for_mail = require_tls

    async def _handle_client(self):
        if self.event_handler.greet_421:
            log.info("greeting %s with 421 (greet-421 on)", peer_text(self.session.peer))
            await self.push("421 4.3.2 Service not available, try again later")
            self.transport.close()
            return
        await super()._handle_client()

    async def smtp_DATA(self, arg):
        h = self.event_handler
        if self.envelope is not None and self.envelope.rcpt_tos:
            log.info("DATA-COMMAND rcpt=%s", ",".join(self.envelope.rcpt_tos))
        if h.drop_at_data_every and self.envelope is not None and self.envelope.rcpt_tos:
            h.data_commands += 1
            if h.data_commands % h.drop_at_data_every == 0:
                log.warning(
                    "DATA command #%d: dropping the connection before 354 (--drop-at-data-every %d)",
                    h.data_commands,
                    h.drop_at_data_every,
                )
                await drop_connection(self)
                return
        await super().smtp_DATA(arg)

    def connection_made(self, transport):
        super().connection_made(transport)
        # Implicit TLS (--implicit-tls): aiosmtpd only marks STARTTLS
        # sessions as encrypted, so record the TLS socket ourselves.
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None and self.session is not None and self.session.ssl is None:
            self.session.ssl = {"ssl_object": ssl_object}

    async def smtp_MAIL(self, arg):
        if self._require_tls_for_mail and self._tls_protocol is None:
            await self.push(NEED_TLS_REPLY)
            return
        await super().smtp_MAIL(arg)


def make_authenticator(user: bytes, password: bytes):
    def authenticator(server, session, envelope, mechanism, auth_data):
        if (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == user
            and auth_data.password == password
        ):
            return AuthResult(success=True, auth_data=auth_data)
        log.info("AUTH %s failed for %r", mechanism, getattr(auth_data, "login", None))
        return AuthResult(success=False, handled=False)

    return authenticator


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="SMTP server for briefing's tests (see module docstring)."
    )
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--maildir", required=True, help="where messages are stored")
    p.add_argument("--tempfail-first", metavar="ADDR_FILE")
    p.add_argument("--reject", metavar="ADDR_FILE")
    p.add_argument("--drop-every", type=int, default=0, metavar="N")
    p.add_argument("--starttls", nargs=2, metavar=("CERT", "KEY"))
    p.add_argument("--implicit-tls", nargs=2, metavar=("CERT", "KEY"))
    p.add_argument("--require-tls", action="store_true")
    p.add_argument("--auth", metavar="USER:PASSWORD")
    p.add_argument("--slow-ms", type=int, default=0, metavar="N")
    p.add_argument("--store-then-drop-every", type=int, default=0, metavar="N")
    p.add_argument("--drop-at-data-every", type=int, default=0, metavar="N")
    p.add_argument("--refuse", action="store_true")
    p.add_argument("--greet-421", action="store_true")
    p.add_argument("--rcpt-451", action="store_true")
    p.add_argument("--exit-on-stdin-eof", action="store_true")
    p.add_argument("--verbose", action="store_true")
    p.add_argument("--no-pipelining", action="store_true")
    args = p.parse_args(argv)
    if args.require_tls and not args.starttls:
        p.error("--require-tls needs --starttls")
    if min(args.drop_every, args.slow_ms, args.store_then_drop_every, args.drop_at_data_every) < 0:
        p.error("--drop-every, --store-then-drop-every, --drop-at-data-every and --slow-ms must not be negative")
    if args.auth is not None and ":" not in args.auth:
        p.error("--auth takes USER:PASSWORD")
    return args


async def serve(args) -> None:
    loop = asyncio.get_running_loop()
    store = Store(args.maildir)
    handler = Handler(args, store)

    tls_context = None
    if args.starttls:
        tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls_context.load_cert_chain(args.starttls[0], args.starttls[1])

    smtp_kwargs = dict(
        hostname="briefing-test-smtp",
        enable_SMTPUTF8=True,
        tls_context=tls_context,
        require_tls=args.require_tls,
        loop=loop,
    )
    if args.auth is not None:
        user, _, password = args.auth.partition(":")
        smtp_kwargs.update(
            auth_required=True,
            # AUTH only after STARTTLS when TLS is offered; plain text otherwise.
            # With implicit TLS every session is encrypted from the start.
            auth_require_tls=tls_context is not None and not args.implicit_tls,
            authenticator=make_authenticator(
                user.encode("utf-8"), password.encode("utf-8")
            ),
        )

    implicit = None
    if args.implicit_tls:
        implicit = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        implicit.load_cert_chain(args.implicit_tls[0], args.implicit_tls[1])
    listener = Listener(
        lambda: TestSMTP(handler, **smtp_kwargs), args.port, implicit, loop
    )
    port = await listener.open()
    if args.refuse:
        await listener.close()
    log.info("listening on 127.0.0.1:%d, storing into %s", port, args.maildir)

    stop = loop.create_future()

    async def control(line: str) -> str:
        words = line.split()
        if words == ["refuse"]:
            await listener.close()
        elif words == ["accept"]:
            await listener.open()
        elif len(words) == 2 and words[0] in ("greet-421", "rcpt-451") and words[1] in ("on", "off"):
            setattr(handler, words[0].replace("-", "_"), words[1] == "on")
        else:
            return f"ERR {line}"
        log.info("control: %s", line)
        return f"OK {line}"

    def watch_stdin():
        try:
            for raw in sys.stdin.buffer:
                line = raw.decode("utf-8", "replace").strip()
                if not line:
                    continue
                answer = asyncio.run_coroutine_threadsafe(control(line), loop).result()
                sys.stdout.write(answer + "\n")
                sys.stdout.flush()
        except Exception as exc:  # pragma: no cover
            log.warning("control channel failed: %s", exc)
        if args.exit_on_stdin_eof:
            loop.call_soon_threadsafe(
                lambda: stop.done() or stop.set_result("stdin closed")
            )

    threading.Thread(target=watch_stdin, daemon=True).start()

    sys.stdout.write(f"READY {port}\n")
    sys.stdout.flush()

    reason = await stop
    await listener.close()
    log.info("exiting: %s", reason)


class Listener:
    """The listening socket, which the control channel can close and reopen
    on the same port (connections are refused while it is closed)."""

    def __init__(self, factory, port: int, ssl_context, loop):
        self.factory = factory
        self.port = port
        self.ssl = ssl_context
        self.loop = loop
        self.server = None

    async def open(self) -> int:
        if self.server is None:
            self.server = await self.loop.create_server(
                self.factory,
                host="127.0.0.1",
                port=self.port,
                ssl=self.ssl,
                reuse_address=True,
            )
            self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        if self.server is not None:
            # close() stops listening at once; waiting for the sessions still
            # open (wait_closed on newer Pythons) is not wanted here.
            self.server.close()
            self.server = None


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="smtp_server %(asctime)s %(name)s %(levelname)s %(message)s",
    )
    # aiosmtpd's own logger ("mail.log") traces every command at INFO.
    # aiosmtpd warns (once via warnings, once via its log) when AUTH is
    # allowed without TLS; that is deliberate here (loopback only).
    warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
    mail_log = logging.getLogger("mail.log")
    mail_log.setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    # aiosmtpd 1.4 sets the deprecated Session.login_data itself on every
    # successful AUTH and warns about it; that is noise here.
    mail_log.addFilter(
        lambda record: not str(record.msg).startswith("Session.login_data is deprecated")
    )
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
