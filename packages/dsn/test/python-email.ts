/**
 * Python 3's `email` package as an independent RFC 5322 / MIME parser for the tests: the DSN is
 * piped to a small script that reports what Python sees (header fields, content types and
 * parameters, defects, the delivery-status blocks, the returned message) as JSON.
 */
import { spawn } from 'node:child_process';

const SCRIPT = String.raw`
import sys, json, email
from email import policy
from email.parser import BytesParser

data = sys.stdin.buffer.read()
msg = BytesParser(policy=policy.default).parsebytes(data)

def text(value):
    # Undo the surrogateescape of 8-bit octets Python keeps in raw payloads and header values.
    return str(value).encode("utf-8", "surrogateescape").decode("utf-8", "replace")

def body(m):
    # decode=True: the octets as received (no transfer encoding on these), then UTF-8.
    return m.get_payload(decode=True).decode("utf-8", "replace")

def fields(m):
    return [[k, text(v)] for k, v in m.items()]

def params(m):
    return {k: v for k, v in m.get_params(header="content-type") or [] if v != ""}

def block_dicts(blocks):
    return [{k: text(v) for k, v in b.items()} for b in blocks]

def describe(part):
    p = {
        "type": part.get_content_type(),
        "params": params(part),
        "cte": part.get("Content-Transfer-Encoding"),
        "defects": [type(d).__name__ for d in part.defects],
        "headers": fields(part),
    }
    ctype = part.get_content_type()
    payload = part.get_payload()
    if ctype == "message/delivery-status":
        # Python knows this type: a list of header blocks.
        p["blocks"] = block_dicts(payload)
    elif ctype == "message/global-delivery-status":
        # Unknown to Python: parsed as message/*, i.e. one message whose header is the first
        # block and whose body holds the others, separated by empty lines.
        first = payload[0]
        rest = body(first).replace("\r\n", "\n")
        blocks = [first] + [email.message_from_string(b, policy=policy.default)
                            for b in rest.split("\n\n") if b.strip()]
        p["blocks"] = block_dicts(blocks)
    elif part.get_content_maintype() == "message":
        inner = payload[0]
        p["message"] = {"headers": fields(inner), "body": body(inner),
                        "defects": [type(d).__name__ for d in inner.defects]}
    elif part.get_content_maintype() == "text":
        p["text"] = part.get_payload(decode=True).decode(part.get_content_charset() or "us-ascii")
    return p

out = {
    "headers": fields(msg),
    "type": msg.get_content_type(),
    "params": params(msg),
    "defects": [type(d).__name__ for d in msg.defects],
    "preamble": msg.preamble,
    "epilogue": msg.epilogue,
    "parts": [describe(p) for p in msg.get_payload()] if msg.is_multipart() else [],
}
sys.stdout.write(json.dumps(out))
`;

export interface PyPart {
  type: string;
  params: Record<string, string>;
  cte: string | null;
  defects: string[];
  headers: [string, string][];
  blocks?: Record<string, string>[];
  message?: { headers: [string, string][]; body: string; defects: string[] };
  text?: string;
}

export interface PyMessage {
  headers: [string, string][];
  type: string;
  params: Record<string, string>;
  defects: string[];
  preamble: string | null;
  epilogue: string | null;
  parts: PyPart[];
}

/** One header field by name (case-insensitive) as Python decoded it; throws when it occurs twice. */
export function header(fields: readonly [string, string][], name: string): string | undefined {
  const found = fields.filter(([k]) => k.toLowerCase() === name.toLowerCase());
  if (found.length > 1) throw new Error(`${name} occurs ${found.length} times`);
  return found[0]?.[1];
}

export async function parseWithPython(message: Buffer): Promise<PyMessage> {
  const child = spawn('python3', ['-c', SCRIPT], { stdio: ['pipe', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (c: Buffer) => out.push(c));
  child.stderr.on('data', (c: Buffer) => err.push(c));
  const done = new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  });
  child.stdin.end(message);
  const code = await done;
  if (code !== 0) throw new Error(`python3 failed (${code}): ${Buffer.concat(err).toString()}`);
  return JSON.parse(Buffer.concat(out).toString('utf8')) as PyMessage;
}
