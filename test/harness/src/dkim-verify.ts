// An independent DKIM verifier for tests: Python's dkimpy (Debian's python3-dkim, which brings
// dnspython and PyNaCl for Ed25519) in a subprocess, looking keys up at the test's DNS server on
// loopback only (dkim_verify.py refuses any other server).
import { isIP } from 'node:net';
import { fileURLToPath } from 'node:url';
import { ClientError, ClientErrorCode, runClient } from './clients.ts';

/** The Python script behind verifyWithDkimpy(), for running it by hand. */
export const DKIM_VERIFY_SCRIPT = fileURLToPath(new URL('./dkim_verify.py', import.meta.url));

/**
 * Debian installs python3-dkim for /usr/bin/python3; a python3 earlier on PATH (pyenv, a venv)
 * may not see it, so that one is tried first.
 */
const CANDIDATES = ['/usr/bin/python3', 'python3'];

/** One DKIM-Signature of the message as dkimpy judged it, topmost first. */
export interface DkimpyResult {
  index: number;
  ok: boolean;
  /** dkimpy's exception (`ValidationError: body hash mismatch ...`), or null. */
  error: string | null;
  domain: string;
  selector: string;
  algorithm: string;
  /** The h= list as dkimpy read it (lower case). */
  headers: string[];
}

export interface DkimpyVerification {
  results: DkimpyResult[];
  /** The names dkimpy looked up (TXT), in order. */
  queried: string[];
}

let python: Promise<string> | undefined;

/** A python3 that can import dkim, dns.resolver and nacl; throws with the install hint otherwise. */
export function findDkimpyPython(): Promise<string> {
  python ??= (async () => {
    for (const candidate of CANDIDATES) {
      try {
        const run = await runClient(candidate, ['-c', 'import dkim, dns.resolver, nacl'], {
          timeoutMs: 20_000,
        });
        if (run.exitCode === 0) return candidate;
      } catch (error) {
        if (!(error instanceof ClientError && error.code === ClientErrorCode.Unavailable)) throw error;
      }
    }
    throw new ClientError(
      ClientErrorCode.Unavailable,
      "dkimpy not found. Install Debian's python3-dkim (apt-get install -y python3-dkim); scripts/test.sh does this",
    );
  })();
  return python;
}

/** Verifies every DKIM-Signature of `message` with dkimpy, keys from the DNS server at `dns`. */
export async function verifyWithDkimpy(
  message: Buffer,
  dns: { host: string; port: number },
): Promise<DkimpyVerification> {
  if (isIP(dns.host) === 0) {
    throw new ClientError(
      ClientErrorCode.InvalidOption,
      `verifyWithDkimpy: ${dns.host} is not an IP address`,
    );
  }
  const command = await findDkimpyPython();
  const run = await runClient(
    command,
    [DKIM_VERIFY_SCRIPT, '--dns-host', dns.host, '--dns-port', String(dns.port)],
    { input: message, timeoutMs: 60_000 },
  );
  try {
    if (run.exitCode !== 0) throw new Error(`exit ${run.exitCode ?? run.signal}`);
    return JSON.parse(run.stdout) as DkimpyVerification;
  } catch (cause) {
    throw new ClientError(ClientErrorCode.BadOutput, `dkim_verify.py failed: ${run.stdout}${run.stderr}`, {
      cause,
    });
  }
}
