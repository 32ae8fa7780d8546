// The runtime config as a cluster delivers it: an ingress process reading the operator's NATS
// Object Store (encrypted) starts before anything is published, waits without failing, starts
// serving with the first config and follows every later one without a restart.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect as natsConnect } from '@nats-io/transport-node';
import type { RuntimeConfig } from '@petrel/config';
import { runtimeConfigOf, runtimeDomain } from '@petrel/config/testing';
import { publishRuntimeConfig, STREAM_OUTBOUND } from '@petrel/queue';
import { forkIngress, startDnsServer, startNats, swaks, tempDir, waitFor } from '@petrel/test-harness';

const WAIT = { timeoutMs: 20_000 };

function runtimeConfig(generation: number, domain?: { draining: boolean }): RuntimeConfig {
  return runtimeConfigOf(
    domain === undefined
      ? []
      : [runtimeDomain('example.org', { source: 'mail/example-org', draining: domain.draining })],
    generation,
  );
}

/** The ingress's JSON log lines (stdout), as they arrive. */
function logLines(child: ChildProcess): string[] {
  const lines: string[] = [];
  let partial = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop() ?? '';
    for (const line of parts) {
      try {
        lines.push(String((JSON.parse(line) as { msg?: unknown }).msg));
      } catch {
        lines.push(line);
      }
    }
  });
  return lines;
}

async function status(port: number, path: string): Promise<number | 'down'> {
  try {
    return (await fetch(`http://127.0.0.1:${port}${path}`)).status;
  } catch {
    return 'down';
  }
}

/** swaks up to RCPT TO (or through DATA); the reply to RCPT TO, e.g. "550 5.7.1 Relaying denied". */
async function send(port: number, to: string, quitAfterRcpt: boolean) {
  const result = await swaks([
    '--server',
    `127.0.0.1:${port}`,
    '--from',
    'sender@outside.example',
    '--to',
    to,
    '--helo',
    'client.example',
    ...(quitAfterRcpt ? ['--quit-after', 'RCPT'] : []),
  ]);
  const rcpt = result.transcript.findIndex((l) => l.from === 'client' && /^RCPT TO:/i.test(l.text));
  const reply = result.transcript.slice(rcpt + 1).find((l) => l.from === 'server' && /^\d{3} /.test(l.text));
  return { exitCode: result.exitCode, rcptReply: reply?.text ?? '', transcript: result.transcript };
}

test('an ingress on the Object Store source waits for the first config, then follows every new one without a restart', async (t: TestContext) => {
  const nats = await startNats(t.after.bind(t));
  const dns = await startDnsServer({ after: t.after.bind(t) });
  const dataDir = await tempDir('store-ingress');
  const key = randomBytes(32);
  const keyFile = join(dataDir, 'config.key');
  await writeFile(keyFile, `${key.toString('base64')}\n`, { mode: 0o600 });
  const { child, mxPort, healthPort } = await forkIngress({
    natsUrl: nats.url,
    config: { store: 'PETREL_CONFIG', keyFile },
    dataDir,
    dnsServer: dns.address,
    after: t.after.bind(t),
    env: { PETREL_LOG_LEVEL: 'info' },
    stdout: 'pipe',
  });
  const logs = logLines(child);

  // Nothing published yet: alive, not ready, saying once what it waits for.
  // The whole start of a new Node process (type stripping, OpenTelemetry, NATS) comes first.
  await waitFor(() => logs.includes("waiting for the operator's runtime config") || undefined, {
    timeoutMs: 60_000,
    message: 'the ingress says it waits',
  });
  assert.equal(await status(healthPort, '/healthz'), 200);
  assert.equal(await status(healthPort, '/readyz'), 503);
  assert.equal(child.exitCode, null);

  const nc = await natsConnect({ servers: nats.url });
  t.after(() => nc.close());
  await publishRuntimeConfig(nc, runtimeConfig(1, { draining: false }), { key });
  const port = await mxPort;
  assert.equal(await status(healthPort, '/readyz'), 200);
  assert.equal(logs.filter((l) => l === "waiting for the operator's runtime config").length, 1);

  // Managed: accepted and queued.
  const accepted = await send(port, 'b@example.org', false);
  assert.equal(accepted.exitCode, 0, JSON.stringify(accepted.transcript));
  assert.match(accepted.rcptReply, /^250 /);
  const jsm = await jetstreamManager(nc);
  assert.equal((await jsm.streams.info(STREAM_OUTBOUND)).state.messages, 1);
  const unmanaged = (await send(port, 'b@elsewhere.example', true)).rcptReply;
  assert.match(unmanaged, /^550 5\.7\.1 /);

  // Draining: refused exactly as an unmanaged domain is.
  await publishRuntimeConfig(nc, runtimeConfig(2, { draining: true }), { key });
  const refused = await waitFor(
    async () => {
      const r = await send(port, 'b@example.org', true);
      return r.rcptReply.startsWith('250 ') ? undefined : r.rcptReply;
    },
    { ...WAIT, message: 'RCPT for the draining domain refused' },
  );
  assert.equal(refused, unmanaged);

  // Managed again, then gone from the config altogether.
  await publishRuntimeConfig(nc, runtimeConfig(3, { draining: false }), { key });
  await waitFor(
    async () => (await send(port, 'b@example.org', true)).rcptReply.startsWith('250 ') || undefined,
    {
      ...WAIT,
      message: 'RCPT accepted again',
    },
  );
  await publishRuntimeConfig(nc, runtimeConfig(4), { key });
  const gone = await waitFor(
    async () => {
      const r = await send(port, 'b@example.org', true);
      return r.rcptReply.startsWith('250 ') ? undefined : r.rcptReply;
    },
    { ...WAIT, message: 'RCPT for the removed domain refused' },
  );
  assert.equal(gone, unmanaged);

  // A config under another key changes nothing (reported in the log), and it is one process throughout.
  await publishRuntimeConfig(nc, runtimeConfig(5, { draining: false }), { key: randomBytes(32) });
  await waitFor(
    () => logs.includes('runtime config reload failed; keeping the previous one') || undefined,
    WAIT,
  );
  assert.equal((await send(port, 'b@example.org', true)).rcptReply, unmanaged);
  assert.equal(child.exitCode, null);
  assert.equal((await jsm.streams.info(STREAM_OUTBOUND)).state.messages, 1);
});
