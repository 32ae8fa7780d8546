#!/usr/bin/env python3
"""Verifies every DKIM-Signature of a message with dkimpy and prints the results as JSON.

Used by dkim-verify.ts (verifyWithDkimpy) so that tests check our signatures with an independent
implementation. Keys are looked up with dnspython at the one DNS server given, which must be a
loopback address: no query leaves the machine. The message is read from stdin, as bytes.
Output: a JSON list with one object per signature, topmost first:
  {"index", "domain", "selector", "algorithm", "headers", "ok", "error"}.
Exit status 0 means the JSON was printed; 2 is a usage error (including a non-loopback server).
"""

import argparse
import ipaddress
import json
import sys

import dkim
import dns.exception
import dns.rdatatype
import dns.resolver


def txt_lookup(host, port, queried):
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [host]
    resolver.port = port
    resolver.lifetime = 5

    def lookup(name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode("ascii")
        queried.append(name)
        try:
            answer = resolver.resolve(
                name, dns.rdatatype.TXT, raise_on_no_answer=False, lifetime=timeout, search=False
            )
        except dns.resolver.NXDOMAIN:
            return None
        except dns.exception.Timeout as error:
            raise dkim.DnsTimeoutError(str(error))
        for rrset in answer.response.answer:
            if rrset.rdtype == dns.rdatatype.TXT:
                # The character-strings of one record are concatenated (RFC 6376 §3.6.2.2).
                return b"".join(list(rrset)[0].strings)
        return None

    return lookup


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dns-host", required=True)
    parser.add_argument("--dns-port", type=int, required=True)
    args = parser.parse_args()
    if not ipaddress.ip_address(args.dns_host).is_loopback:
        print(f"dkim_verify.py: {args.dns_host} is not a loopback address", file=sys.stderr)
        return 2

    message = sys.stdin.buffer.read()
    queried = []
    lookup = txt_lookup(args.dns_host, args.dns_port, queried)
    count = sum(1 for name, _ in dkim.DKIM(message).headers if name.lower() == b"dkim-signature")
    results = []
    for index in range(count):
        verifier = dkim.DKIM(message, minkey=1024)
        entry = {"index": index, "ok": False, "error": None}
        try:
            entry["ok"] = bool(verifier.verify(idx=index, dnsfunc=lookup))
        except dkim.DKIMException as error:
            entry["error"] = f"{type(error).__name__}: {error}"
        fields = verifier.signature_fields or {}
        entry["domain"] = fields.get(b"d", b"").decode("ascii", "replace")
        entry["selector"] = fields.get(b"s", b"").decode("ascii", "replace")
        entry["algorithm"] = fields.get(b"a", b"").decode("ascii", "replace")
        entry["headers"] = [h.decode("ascii", "replace") for h in getattr(verifier, "include_headers", ())]
        results.append(entry)
    json.dump({"results": results, "queried": queried}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
