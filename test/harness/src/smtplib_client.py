#!/usr/bin/env python3
"""Sends one message with Python's standard smtplib and prints what happened as JSON.

Used by clients.ts (pythonSmtplib) so interoperability tests meet smtplib as Python programs use
it. Every command and reply is recorded, whatever smtplib API sends them. The password comes from
the SMTPLIB_PASSWORD environment variable, so it never appears in a process listing. The message is
read from --message-file or stdin, as bytes. Exit status 0 means the JSON was printed (look at "ok"
and "error"); 2 is a usage error.
"""

import argparse
import email
import email.policy
import json
import os
import smtplib
import ssl
import sys


class Recorder:
    """Mixin that records each command with the reply it got."""

    def _init_recording(self):
        self.exchanges = []
        self._pending = None
        self._after_data = False
        self._in_auth = False

    def putcmd(self, cmd, args=""):
        line = f"{cmd} {args}".strip()
        # AUTH arguments and the continuation lines after a 334 carry credentials.
        if cmd.upper() == "AUTH":
            mechanism = args.split(" ")[0]
            line = f"AUTH {mechanism} <redacted>" if " " in args else f"AUTH {mechanism}"
            self._in_auth = True
        elif self._in_auth:
            line = "<redacted>"
        self._pending = line
        super().putcmd(cmd, args)

    def getreply(self):
        code, text = super().getreply()
        if self._pending is not None:
            command = self._pending
        elif self._after_data:
            command = "<message>"
        else:
            command = "<greeting>"
        self._after_data = command.upper() == "DATA" and code == 354
        if code != 334:
            self._in_auth = False
        self.exchanges.append(
            {"command": command, "code": code, "text": text.decode("utf-8", "replace")}
        )
        self._pending = None
        return code, text


class RecordingSMTP(Recorder, smtplib.SMTP):
    def __init__(self, **kwargs):
        self._init_recording()
        super().__init__(**kwargs)


class RecordingSMTPS(Recorder, smtplib.SMTP_SSL):
    def __init__(self, **kwargs):
        self._init_recording()
        super().__init__(**kwargs)


def tls_context(args):
    if args.insecure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=args.cafile)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--tls", choices=["none", "starttls", "implicit"], default="none")
    p.add_argument("--cafile")
    p.add_argument("--insecure", action="store_true")
    p.add_argument("--ehlo", default="client.test")
    p.add_argument("--user")
    p.add_argument("--auth-mechanism", help="restricts login() to this mechanism, e.g. PLAIN")
    p.add_argument("--from", dest="sender", required=True)
    p.add_argument("--to", action="append", required=True)
    p.add_argument("--mail-option", action="append", default=[])
    p.add_argument("--rcpt-option", action="append", default=[])
    p.add_argument(
        "--api",
        choices=["sendmail", "send_message"],
        default="sendmail",
        help="sendmail sends the bytes as given; send_message parses and re-serialises them",
    )
    p.add_argument("--message-file")
    p.add_argument("--timeout", type=float, default=30.0)
    return p.parse_args(argv)


def main(argv):
    args = parse_args(argv)
    if args.message_file:
        with open(args.message_file, "rb") as f:
            raw = f.read()
    else:
        raw = sys.stdin.buffer.read()

    result = {
        "ok": False,
        "features": {},
        "tls": None,
        "authenticated": False,
        "refused": {},
        "exchanges": [],
        "error": None,
    }
    client = None
    try:
        if args.tls == "implicit":
            client = RecordingSMTPS(
                local_hostname=args.ehlo, timeout=args.timeout, context=tls_context(args)
            )
        else:
            client = RecordingSMTP(local_hostname=args.ehlo, timeout=args.timeout)
        # smtplib takes the TLS server name from _host, which only a host given to __init__ sets;
        # connecting separately keeps the greeting in the recorded exchanges if it is refused.
        client._host = args.host
        client.connect(args.host, args.port)
        client.ehlo()
        if args.tls == "starttls":
            client.starttls(context=tls_context(args))
            client.ehlo()
        if args.tls != "none":
            result["tls"] = {"version": client.sock.version(), "cipher": client.sock.cipher()[0]}
        result["features"] = dict(client.esmtp_features)
        if args.user is not None:
            if args.auth_mechanism and client.has_extn("auth"):
                client.esmtp_features["auth"] = args.auth_mechanism
            client.login(args.user, os.environ.get("SMTPLIB_PASSWORD", ""))
            result["authenticated"] = True
        if args.api == "send_message":
            message = email.message_from_bytes(raw, policy=email.policy.SMTP)
            refused = client.send_message(
                message, args.sender, args.to, args.mail_option, args.rcpt_option
            )
        else:
            refused = client.sendmail(args.sender, args.to, raw, args.mail_option, args.rcpt_option)
        result["refused"] = {
            rcpt: [code, text.decode("utf-8", "replace")] for rcpt, (code, text) in refused.items()
        }
        result["ok"] = True
        client.quit()
    except smtplib.SMTPRecipientsRefused as e:
        result["refused"] = {
            rcpt: [code, text.decode("utf-8", "replace")] for rcpt, (code, text) in e.recipients.items()
        }
        result["error"] = {"type": type(e).__name__, "message": str(e)}
    except smtplib.SMTPResponseException as e:
        text = e.smtp_error.decode("utf-8", "replace") if isinstance(e.smtp_error, bytes) else str(e.smtp_error)
        result["error"] = {"type": type(e).__name__, "message": text, "code": e.smtp_code}
    except (smtplib.SMTPException, OSError, ValueError) as e:
        result["error"] = {"type": type(e).__name__, "message": str(e)}
    finally:
        if client is not None:
            result["exchanges"] = client.exchanges
            try:
                client.close()
            except OSError:
                pass
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
