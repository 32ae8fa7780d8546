/**
 * Fixtures of the webhooks' tests: real NATS (JetStream) and Postgres from the harness, a real
 * HTTP receiver on 127.0.0.1, runtime configs with subscriptions, and delivery events.
 */
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { DomainIndex } from '@petrel/config';
import { runtimeConfigOf, runtimeDomain } from '@petrel/config/testing';
import { type DeliveryEvent, EventKind } from '@petrel/proto';
import { deliveryEvent, type EventFields, ensureStreams } from '@petrel/queue';
import { migrate } from '@petrel/store';
import { startNats, startPostgres, type TestPostgres } from '@petrel/test-harness';
import pg from 'pg';
import { idempotencyKey } from '../src/matching.ts';
import { ensureWebhookStream } from '../src/streams.ts';

export interface TestEnv {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  postgres: TestPostgres;
  pool: pg.Pool;
}

/** NATS with the queue's and the webhooks' streams, and a migrated Postgres with a pool. */
export async function startEnv(t: { after(fn: () => Promise<void> | void): void }): Promise<TestEnv> {
  const [nats, postgres] = await Promise.all([startNats(t.after.bind(t)), startPostgres(t.after.bind(t))]);
  await migrate(postgres.databaseUrl);
  const nc = await connect({ servers: nats.url });
  const jsm = await jetstreamManager(nc);
  await ensureStreams(jsm, { replicas: 1 });
  await ensureWebhookStream(jsm, { replicas: 1 });
  const pool = new pg.Pool({ connectionString: postgres.databaseUrl, connectionTimeoutMillis: 2_000 });
  // A Postgres stopped under the pool breaks its idle connections: not the test's failure.
  pool.on('error', () => undefined);
  return { nc, js: jetstream(nc), jsm, postgres, pool };
}

/** Closes what startEnv opened (the servers stop in the harness's after hooks). */
export async function closeEnv(env: TestEnv): Promise<void> {
  await env.pool.end().catch(() => undefined);
  await env.nc.close();
}

/** Log lines kept for assertions. */
export function testLog() {
  const lines: { level: string; msg: string; fields: object }[] = [];
  const at = (level: string) => (fields: object, msg: string) => void lines.push({ level, msg, fields });
  return { lines, info: at('info'), warn: at('warn'), error: at('error') };
}

export const SECRETS = {
  'default/a-example/ops': 'a-ops-secret-0123456789',
  'default/b-example/audit': 'b-audit-secret-0123456789',
} as const;
export type SubscriptionId = keyof typeof SECRETS;

/**
 * a.example: `ops` takes every kind; b.example: `audit` takes all but deferred. Both POST to the
 * receiver at `port`, path /<domain>/<name>.
 */
export function testDomains(port: number, options: { withoutAudit?: boolean } = {}): DomainIndex {
  const hook = (domain: string, name: string, events: string[]) => ({
    id: `default/${domain.replace('.', '-')}/${name}`,
    name,
    url: `http://127.0.0.1:${port}/${domain}/${name}`,
    events,
    secret: SECRETS[`default/${domain.replace('.', '-')}/${name}` as SubscriptionId],
  });
  const domain = (name: string, webhooks: ReturnType<typeof hook>[]) =>
    runtimeDomain(name, { source: `default/${name.replace('.', '-')}`, webhooks });
  return new DomainIndex(
    runtimeConfigOf([
      domain('a.example', [
        hook('a.example', 'ops', ['delivered', 'deferred', 'bounced', 'expired', 'suppressed']),
      ]),
      domain(
        'b.example',
        options.withoutAudit
          ? []
          : [hook('b.example', 'audit', ['delivered', 'bounced', 'expired', 'suppressed'])],
      ),
    ]),
  );
}

export function testEvent(eventId: string, f: Partial<EventFields>): DeliveryEvent {
  return deliveryEvent({
    eventId,
    kind: EventKind.DELIVERED,
    messageId: `m-${eventId}`,
    destinationDomain: 'x.test',
    recipients: ['rcpt@x.test'],
    atMs: Date.now(),
    attempt: 1,
    remoteHost: 'mx.x.test',
    remoteAddress: '192.0.2.1',
    tlsProtocol: 'TLSv1.3',
    durationMs: 5n,
    error: '',
    sender: 'app@a.example',
    ...f,
  });
}

const A = 'default/a-example/ops';
const B = 'default/b-example/audit';

/**
 * Events of several kinds for two domains, and which subscriptions each must reach: `batch` goes
 * out as one DeliveryEventBatch, `single` one event per message (the per-kind subjects).
 */
export function scenario(prefix: string) {
  const e = (id: string, subscriptions: SubscriptionId[], f: Partial<EventFields>) => ({
    event: testEvent(`${prefix}-${id}`, f),
    subscriptions,
  });
  const batch = [
    e('a-delivered', [A], {}),
    e('a-deferred', [A], {
      kind: EventKind.DEFERRED,
      reply: { code: 451, enhanced: '4.7.1', text: 'later' },
    }),
    e('a-bounced', [A], {
      kind: EventKind.BOUNCED,
      reply: { code: 550, enhanced: '5.1.1', text: 'no such user' },
      dsnMessageId: 'dsn-1',
    }),
    e('a-expired', [A], { kind: EventKind.EXPIRED, error: 'queue lifetime over' }),
    e('b-in-delivered', [B], { sender: 'someone@x.test', destinationDomain: 'b.example' }),
    // b's audit does not take deferred.
    e('b-in-deferred', [], {
      sender: 'someone@x.test',
      destinationDomain: 'b.example',
      kind: EventKind.DEFERRED,
    }),
    e('b-suppressed', [B], {
      sender: '',
      messageId: '',
      destinationDomain: 'b.example',
      recipients: ['gone@b.example'],
      kind: EventKind.SUPPRESSED,
    }),
    // From a managed domain to another: both.
    e('ab-delivered', [A, B], { destinationDomain: 'b.example', recipients: ['u@b.example'] }),
    // Never sent.
    e('a-accepted', [], { kind: EventKind.ACCEPTED, attempt: 0 }),
  ];
  const single = [
    e('b-in-bounced', [B], { sender: 'x@x.test', destinationDomain: 'b.example', kind: EventKind.BOUNCED }),
    e('a-purged', [], { kind: EventKind.PURGED }),
    e('c-delivered', [], { sender: 'x@c.test', destinationDomain: 'd.test' }),
  ];
  /** Idempotency key → (subscription, event id) of every job the events must make. */
  const expected = new Map<string, { subscription: SubscriptionId; eventId: string }>();
  for (const { event, subscriptions } of [...batch, ...single]) {
    for (const subscription of subscriptions) {
      expected.set(idempotencyKey(subscription, event.eventId), { subscription, eventId: event.eventId });
    }
  }
  return { batch: batch.map((x) => x.event), single: single.map((x) => x.event), expected };
}

export interface ReceivedRequest {
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  /** What the receiver answered. */
  readonly status: number;
}

/** An HTTP receiver on 127.0.0.1:`port`; answers `status` (changeable) to every POST. */
export class Receiver {
  status: number;
  readonly requests: ReceivedRequest[] = [];
  readonly #server: Server;

  private constructor(server: Server, status: number) {
    this.#server = server;
    this.status = status;
  }

  static async listen(port: number, status = 200): Promise<Receiver> {
    const server = createServer();
    const receiver = new Receiver(server, status);
    server.on('request', (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const status = receiver.status;
        receiver.requests.push({
          path: req.url ?? '',
          headers: req.headers,
          body: Buffer.concat(chunks).toString('utf8'),
          status,
        });
        res.writeHead(status, { 'content-type': 'text/plain' });
        res.end(status === 200 ? 'ok' : 'unavailable, try later');
      });
    });
    server.listen({ host: '127.0.0.1', port });
    await once(server, 'listening');
    return receiver;
  }

  /** Requests answered with `status`, by idempotency key. */
  keysAnswered(status: number): Set<string> {
    return new Set(
      this.requests.filter((r) => r.status === status).map((r) => String(r.headers['idempotency-key'])),
    );
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

export interface LogRow {
  delivery_id: string;
  idempotency_key: string;
  subscription: string;
  event_id: string;
  domain: string;
  event_kind: string;
  message_id: string;
  url: string;
  attempt: number;
  status_code: number | null;
  error: string;
  delivered_at: Date | null;
  created_at: Date;
  duration_ms: string;
}

export async function logRows(pool: pg.Pool): Promise<LogRow[]> {
  const { rows } = await pool.query<LogRow>(
    'SELECT * FROM webhook_deliveries ORDER BY idempotency_key, attempt',
  );
  return rows;
}
