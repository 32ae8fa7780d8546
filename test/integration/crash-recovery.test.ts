import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SmtpClient } from '@petrel/smtp';
import { type PetrelDev, startPetrelDev, startSmtpSink, waitFor } from '@petrel/test-harness';
import { exampleConfigDir } from './fixtures.ts';

const MESSAGES = 1000;
const CONNECTIONS = 10;
/** The whole process group is killed once this many messages got their 250; the rest go to the restarted relay. */
const KILL_AFTER = 500;

test('SIGKILL of every petrel dev process while the next hop answers 421 loses no message that got a 250', async (t) => {
  // The smarthost answers 421 and closes: every delivery attempt fails and the entries stay queued.
  const sink = await startSmtpSink({ behaviour: () => ({ kind: 'close421' }) });
  t.after(() => sink.close());
  const configDir = await exampleConfigDir();
  const env = { PETREL_RETRY_DELAYS_MS: '200,500,1000', PETREL_ACK_WAIT_MS: '5000' };
  const first = await startPetrelDev(t.after.bind(t), { configDir, smarthost: sink.address, env });
  let second: PetrelDev | undefined;

  const accepted = new Map<number, string>(); // test number -> queue id from the 250
  const pending = Array.from({ length: MESSAGES }, (_, n) => n);
  let failedSends = 0;

  // Like a real client: a message without a 250 (connection lost, 4xx) is sent again later.
  const sender = async (): Promise<void> => {
    let client: SmtpClient | undefined;
    for (let n = pending.shift(); n !== undefined; n = pending.shift()) {
      try {
        client ??= await waitFor(
          () =>
            SmtpClient.connect({
              host: '127.0.0.1',
              port: first.smtpPort,
              localName: 'load.example',
              timeoutMs: 10_000,
            }),
          { timeoutMs: 120_000, intervalMs: 100, message: 'the relay to accept connections' },
        );
        const body = Buffer.from(`Subject: crash test ${n}\r\nX-Test-Number: ${n}\r\n\r\nmessage ${n}\r\n`);
        const result = await client.send(
          { from: 'load@outside.example', to: [`rcpt${n % 7}@example.org`] },
          body,
        );
        const queued = /queued as ([0-9A-Z]{26})/.exec(result.dataReply?.lines.join(' ') ?? '');
        if (result.dataReply?.code === 250 && queued?.[1]) accepted.set(n, queued[1]);
        else pending.push(n);
      } catch {
        failedSends++;
        client?.close();
        client = undefined;
        pending.push(n);
      }
    }
    await client?.quit();
  };
  const crash = async (): Promise<void> => {
    await waitFor(() => accepted.size >= KILL_AFTER, {
      timeoutMs: 120_000,
      message: `${KILL_AFTER} messages accepted`,
    });
    await first.killGroup();
    assert.equal(sink.messages.length, 0, 'nothing was delivered while the sink answered 421');
    assert.ok(sink.connections > 0, 'deliveries were attempted (and refused) before the kill');
    // Same data directory and port: the queue and the database survive the crash.
    second = await startPetrelDev(t.after.bind(t), {
      configDir,
      smarthost: sink.address,
      env,
      dataDir: first.dataDir,
      smtpPort: first.smtpPort,
    });
  };
  await Promise.all([crash(), ...Array.from({ length: CONNECTIONS }, sender)]);
  assert.ok(second, 'the relay was restarted');
  assert.equal(accepted.size, MESSAGES, 'every message eventually got a 250');

  sink.setBehaviour(() => ({ kind: 'accept' }));
  const arrived = (): Set<number> => {
    const numbers = new Set<number>();
    for (const m of sink.messages) {
      const match = /X-Test-Number: (\d+)/.exec(m.data.toString());
      if (match) numbers.add(Number(match[1]));
    }
    return numbers;
  };
  await waitFor(() => arrived().size === MESSAGES, {
    timeoutMs: 180_000,
    intervalMs: 250,
    message: `all ${MESSAGES} accepted messages at the sink`,
  }).catch(() => undefined);
  const got = arrived();
  assert.deepEqual(
    [...accepted.keys()].filter((n) => !got.has(n)),
    [],
    'messages that got a 250 but never arrived',
  );
  t.diagnostic(
    `250s: ${accepted.size}; sends cut by the kill: ${failedSends}; arrived: ${got.size} distinct, ${sink.messages.length} in total`,
  );
});
