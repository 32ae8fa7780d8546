/**
 * The trace API (docs/api.md, OpenAPI at /openapi.json) and the recorder's health and metrics,
 * on the service's HTTP port. JSON in and out; every /v1 route needs `Authorization: Bearer`.
 * Errors: `{"error": {"code": "PETREL_ERR_API_...", "message": "..."}}` with the HTTP status.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { JetStreamClient } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  DESTINATION_STATUS_SUBJECT,
  type DestinationControls,
  type DestinationStatusReply,
  QUEUE_OPERATIONS_SUBJECT,
  QueueOperation,
  type QueueOperationReply,
  type SuppressionList,
} from '@petrel/delivery';
import { EventKind } from '@petrel/proto';
import { deliveryEvent, publishEvent } from '@petrel/queue';
import type { Logger } from '@petrel/telemetry';
import type pg from 'pg';
import type { RecorderStats } from '../recorder.ts';
import { openApiDocument } from './openapi.ts';
import { findMessages, getMessage, queueCounts, timeline, webhookDeliveries } from './queries.ts';
import type { TokenSource } from './tokens.ts';
import type { Destination } from './types.ts';

export const ApiErrorCode = {
  Unauthorized: 'PETREL_ERR_API_UNAUTHORIZED',
  NotFound: 'PETREL_ERR_API_NOT_FOUND',
  MethodNotAllowed: 'PETREL_ERR_API_METHOD_NOT_ALLOWED',
  BadRequest: 'PETREL_ERR_API_BAD_REQUEST',
  DatabaseUnavailable: 'PETREL_ERR_API_DATABASE_UNAVAILABLE',
  NoWorkers: 'PETREL_ERR_API_NO_WORKERS',
  OperationFailed: 'PETREL_ERR_API_OPERATION_FAILED',
  Internal: 'PETREL_ERR_API_INTERNAL',
} as const;
export type ApiErrorCode = (typeof ApiErrorCode)[keyof typeof ApiErrorCode];

export class ApiError extends Error {
  readonly status: number;
  readonly code: ApiErrorCode;
  constructor(status: number, code: ApiErrorCode, message: string) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

export interface ApiDeps {
  readonly db: pg.Pool;
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly suppressions: SuppressionList;
  readonly controls: DestinationControls;
  readonly tokens: TokenSource;
  readonly log: Logger;
  readonly retentionDays: number;
  /** The recorder's figures (lag, written) for /v1/status and /metrics; refreshed by the caller. */
  readonly stats?: () => Promise<RecorderStats> | RecorderStats;
  readonly ready?: () => boolean;
  /** Default expiry of a suppression added without one (ms). */
  readonly suppressionMs?: number;
  /** How long queue operations may take (bounce and purge walk every deferred entry). */
  readonly operationTimeoutMs?: number;
}

const MAX_BODY = 64 * 1024;
const DAY_MS = 86_400_000;
const ADDRESS = /^[^\s@<>()]{1,64}@[^\s@<>()]{1,255}$/;
const DOMAIN =
  /^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.?$|^\[[^\]]{1,64}\]$/i;

type Handler = (req: IncomingMessage, url: URL, params: string[]) => Promise<unknown>;
interface Route {
  readonly method: string;
  readonly pattern: RegExp;
  /** The OpenAPI path it implements (a test checks both agree). */
  readonly path: string;
  readonly handler: Handler;
}

function bad(message: string): ApiError {
  return new ApiError(400, ApiErrorCode.BadRequest, message);
}

function intParam(url: URL, name: string, fallback: number, max: number): number {
  const raw = url.searchParams.get(name);
  if (raw === null) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > max) throw bad(`${name} must be a whole number from 1 to ${max}`);
  return n;
}

/** Years Postgres' timestamptz and RFC 3339 both take. */
const MIN_TIME = Date.UTC(1, 0, 1);
const MAX_TIME = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

function timeParam(url: URL, name: string, fallback: Date): Date {
  const raw = url.searchParams.get(name);
  if (raw === null) return fallback;
  const t = new Date(raw);
  if (Number.isNaN(t.getTime()) || t.getTime() < MIN_TIME || t.getTime() > MAX_TIME) {
    throw bad(`${name} must be an RFC 3339 time (years 1 to 9999), got ${JSON.stringify(raw)}`);
  }
  return t;
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw bad(`malformed percent-encoding in the path: ${JSON.stringify(segment)}`);
  }
}

function text(url: URL, name: string): string | undefined {
  const v = url.searchParams.get(name);
  return v === null || v.trim() === '' ? undefined : v.trim();
}

/** A request body: its fields are checked where used. */
interface Body {
  readonly address?: unknown;
  readonly reason?: unknown;
  readonly until?: unknown;
  readonly expiresAt?: unknown;
}

async function jsonBody(req: IncomingMessage): Promise<Body> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY)
      throw new ApiError(413, ApiErrorCode.BadRequest, `request body over ${MAX_BODY} bytes`);
    chunks.push(chunk as Buffer);
  }
  if (size === 0) return {};
  let value: unknown;
  try {
    value = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw bad('request body is not JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw bad('request body must be a JSON object');
  return value as Body;
}

/** Postgres unreachable (connection refused, shutting down, ...): 503, the caller may retry. */
function databaseDown(error: unknown): boolean {
  const e = error as { code?: string; message?: string };
  return (
    ['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'ETIMEDOUT', '57P01', '57P03', '08006', '08001'].includes(
      e?.code ?? '',
    ) ||
    /Connection terminated|connect ECONNREFUSED|timeout exceeded when trying to connect/i.test(
      e?.message ?? '',
    )
  );
}

export function createApi(deps: ApiDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const routes = apiRoutes(deps);
  return (req, res) => {
    void handle(deps, routes, req, res);
  };
}

async function handle(deps: ApiDeps, routes: readonly Route[], req: IncomingMessage, res: ServerResponse) {
  const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
    const payload = JSON.stringify(body, null, 2);
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers });
    res.end(`${payload}\n`);
  };
  try {
    const url = new URL(req.url ?? '/', 'http://api.invalid');
    const path = url.pathname;
    if (path === '/healthz') return send(200, { status: 'ok' });
    if (path === '/readyz') {
      const ok = deps.ready?.() ?? true;
      return send(ok ? 200 : 503, { status: ok ? 'ok' : 'unavailable' });
    }
    if (path === '/metrics') {
      const s = await deps.stats?.();
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
      res.end(s === undefined ? '' : metricsText(s));
      return;
    }
    if (path === '/openapi.json') return send(200, openApiDocument);
    const candidates = routes.filter((r) => r.pattern.test(path));
    if (candidates.length === 0) throw new ApiError(404, ApiErrorCode.NotFound, `no such endpoint: ${path}`);
    // Authentication before anything that tells what exists.
    const header = req.headers.authorization ?? '';
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!(await deps.tokens.configured())) {
      throw new ApiError(
        401,
        ApiErrorCode.Unauthorized,
        'the API has no token configured; every request is refused',
      );
    }
    if (match === null)
      throw new ApiError(
        401,
        ApiErrorCode.Unauthorized,
        'missing bearer token (Authorization: Bearer <token>)',
      );
    if (!(await deps.tokens.accepts(match[1] as string))) {
      throw new ApiError(401, ApiErrorCode.Unauthorized, 'the bearer token is not valid');
    }
    const route = candidates.find((r) => r.method === req.method);
    if (route === undefined) {
      throw new ApiError(405, ApiErrorCode.MethodNotAllowed, `${req.method} is not allowed on ${path}`);
    }
    const params = (route.pattern.exec(path) ?? []).slice(1).map(decodeSegment);
    const result = await route.handler(req, url, params);
    send(route.method === 'POST' && path === '/v1/suppressions' ? 201 : 200, result);
  } catch (error) {
    if (error instanceof ApiError) {
      const headers: Record<string, string> =
        error.status === 401 ? { 'www-authenticate': 'Bearer realm="petrel"' } : {};
      if (error.status === 405) headers['allow'] = 'GET, POST, DELETE';
      return send(error.status, { error: { code: error.code, message: error.message } }, headers);
    }
    // A value Postgres refuses (SQLSTATE class 22: out of range, bad encoding): the caller's input.
    if (/^22/.test((error as { code?: string })?.code ?? '')) {
      return send(400, {
        error: {
          code: ApiErrorCode.BadRequest,
          message: `a value was refused by the database: ${(error as Error).message}`,
        },
      });
    }
    if (databaseDown(error)) {
      return send(
        503,
        {
          error: {
            code: ApiErrorCode.DatabaseUnavailable,
            message: 'Postgres is unreachable; try again shortly',
          },
        },
        { 'retry-after': '5' },
      );
    }
    deps.log.error({ err: error, url: req.url }, 'API request failed');
    send(500, { error: { code: ApiErrorCode.Internal, message: 'internal error; see the recorder log' } });
  }
}

function metricsText(s: RecorderStats): string {
  return [
    '# HELP petrel_recorder_lag_messages Event stream messages not yet written to Postgres.',
    '# TYPE petrel_recorder_lag_messages gauge',
    `petrel_recorder_lag_messages ${s.lagMessages}`,
    '# HELP petrel_recorder_lag_seconds Age of the oldest event message not yet written.',
    '# TYPE petrel_recorder_lag_seconds gauge',
    `petrel_recorder_lag_seconds ${s.lagSeconds}`,
    '# HELP petrel_recorder_events_total Events by outcome (undecodable and refused: stream messages).',
    '# TYPE petrel_recorder_events_total counter',
    `petrel_recorder_events_total{outcome="written"} ${s.written}`,
    `petrel_recorder_events_total{outcome="duplicate"} ${s.duplicates}`,
    `petrel_recorder_events_total{outcome="expired"} ${s.expired}`,
    `petrel_recorder_events_total{outcome="undecodable"} ${s.undecodable}`,
    `petrel_recorder_events_total{outcome="ignored"} ${s.ignored}`,
    `petrel_recorder_events_total{outcome="refused"} ${s.refused}`,
    '# HELP petrel_recorder_failing Whether writes to Postgres are failing (being retried).',
    '# TYPE petrel_recorder_failing gauge',
    `petrel_recorder_failing ${s.failing ? 1 : 0}`,
    '',
  ].join('\n');
}

/** The /v1 routes; `path` is each one's OpenAPI path. */
export function apiRoutes(deps: ApiDeps): Route[] {
  const route = (method: string, path: string, handler: Handler): Route => ({
    method,
    path,
    // {name} matches one path segment.
    pattern: new RegExp(`^${path.replace(/\{[a-zA-Z]+\}/g, '([^/]+)')}$`),
    handler,
  });
  const range = (url: URL) => {
    const now = Date.now();
    const until = timeParam(url, 'until', new Date(now + DAY_MS));
    const since = timeParam(url, 'since', new Date(now - (deps.retentionDays + 1) * DAY_MS));
    if (since >= until) throw bad('since must be before until');
    return { since, until };
  };
  const domainParam = (raw: string) => {
    const d = raw.toLowerCase().replace(/\.$/, '');
    if (!DOMAIN.test(d)) throw bad(`not a domain: ${JSON.stringify(raw)}`);
    return d;
  };
  const operation = async (op: QueueOperation, domain: string, body: Body) => {
    const request: Record<string, unknown> = { domain };
    if (body.until !== undefined) {
      const until = typeof body.until === 'string' ? Date.parse(body.until) : Number.NaN;
      if (Number.isNaN(until) || until < MIN_TIME || until > MAX_TIME)
        throw bad('until must be an RFC 3339 time');
      request['until'] = body.until;
    }
    if (body.reason !== undefined) {
      if (typeof body.reason !== 'string' || body.reason.length > 500)
        throw bad('reason must be a string of at most 500 characters');
      request['reason'] = body.reason;
    }
    let reply: QueueOperationReply;
    try {
      const m = await deps.nc.request(`${QUEUE_OPERATIONS_SUBJECT}.${op}`, JSON.stringify(request), {
        timeout: deps.operationTimeoutMs ?? 120_000,
      });
      reply = m.json<QueueOperationReply>();
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      if (/no responders|503/i.test(message)) {
        throw new ApiError(
          503,
          ApiErrorCode.NoWorkers,
          'no delivery worker is running to carry out the operation',
        );
      }
      throw new ApiError(504, ApiErrorCode.OperationFailed, `the operation did not complete: ${message}`);
    }
    if (!reply.ok) {
      throw new ApiError(
        reply.code.endsWith('BAD_REQUEST') ? 400 : 502,
        reply.code.endsWith('BAD_REQUEST') ? ApiErrorCode.BadRequest : ApiErrorCode.OperationFailed,
        reply.error,
      );
    }
    return { domain, operation: op, count: reply.count };
  };

  return [
    route('GET', '/v1/messages', async (_req, url) => {
      const { since, until } = range(url);
      const messages = await findMessages(deps.db, {
        ...(text(url, 'q') === undefined ? {} : { q: text(url, 'q') }),
        ...(text(url, 'queue_id') === undefined ? {} : { queueId: text(url, 'queue_id') }),
        ...(text(url, 'message_id') === undefined ? {} : { messageId: text(url, 'message_id') }),
        ...(text(url, 'sender') === undefined ? {} : { sender: text(url, 'sender') }),
        ...(text(url, 'recipient') === undefined ? {} : { recipient: text(url, 'recipient') }),
        since,
        until,
        limit: intParam(url, 'limit', 50, 1000),
      });
      return { messages };
    }),
    route('GET', '/v1/messages/{queueId}', async (_req, _url, [queueId = '']) => {
      const message = await getMessage(deps.db, queueId);
      if (message === undefined)
        throw new ApiError(404, ApiErrorCode.NotFound, `no message with queue id ${queueId}`);
      return { message, timeline: await timeline(deps.db, message.queueId) };
    }),
    route('GET', '/v1/queue', async () => ({ destinations: await queueSummary(deps) })),
    route('GET', '/v1/queue/{domain}', async (_req, _url, [raw = '']) => {
      const domain = domainParam(raw);
      const [destination] = await queueSummary(deps, domain);
      return {
        destination: destination ?? {
          domain,
          ready: 0,
          deferred: 0,
          oldestAgeSeconds: null,
          ratePerSecond: null,
          configuredRatePerSecond: null,
          suspended: false,
          suspendedUntil: null,
        },
      };
    }),
    ...[
      QueueOperation.Retry,
      QueueOperation.Suspend,
      QueueOperation.Resume,
      QueueOperation.Bounce,
      QueueOperation.Purge,
    ].map((op) =>
      route('POST', `/v1/queue/{domain}/${op}`, async (req, _url, [raw = '']) =>
        operation(op, domainParam(raw), await jsonBody(req)),
      ),
    ),
    route('GET', '/v1/suppressions', async (_req, url) => {
      const address = text(url, 'address')?.toLowerCase();
      const limit = intParam(url, 'limit', 100, 10_000);
      const all = deps.suppressions
        .list()
        .filter((s) => address === undefined || s.address.includes(address));
      return { total: all.length, suppressions: all.slice(0, limit) };
    }),
    route('POST', '/v1/suppressions', async (req) => {
      const body = await jsonBody(req);
      const address = body.address;
      if (typeof address !== 'string' || !ADDRESS.test(address))
        throw bad('address must be an email address (local@domain)');
      const reason = body.reason ?? 'added by an operator';
      if (typeof reason !== 'string' || reason.length > 500)
        throw bad('reason must be a string of at most 500 characters');
      let forMs = deps.suppressionMs ?? 30 * DAY_MS;
      if (body.expiresAt !== undefined) {
        const t = typeof body.expiresAt === 'string' ? Date.parse(body.expiresAt) : Number.NaN;
        if (Number.isNaN(t)) throw bad('expiresAt must be an RFC 3339 time');
        if (t <= Date.now()) throw bad('expiresAt must be in the future');
        forMs = t - Date.now();
      }
      const suppression = await deps.suppressions.add(address, {
        reason,
        status: '',
        forMs,
        source: 'manual',
      });
      // For webhooks subscribed to "suppressed" (an address only: no message).
      await publishEvent(
        deps.js,
        deliveryEvent({
          eventId: `suppressed.${suppression.address}.${Date.parse(suppression.createdAt)}`,
          kind: EventKind.SUPPRESSED,
          messageId: '',
          destinationDomain: suppression.address.slice(suppression.address.lastIndexOf('@') + 1),
          recipients: [suppression.address],
          atMs: Date.parse(suppression.createdAt),
          error: `suppressed by an operator: ${reason}`,
        }),
        { timeoutMs: 5_000 },
      ).catch((error: unknown) => deps.log.warn({ err: error }, 'suppressed event not published'));
      return { suppression };
    }),
    route('DELETE', '/v1/suppressions/{address}', async (_req, _url, [address = '']) => {
      if (deps.suppressions.get(address) === undefined) {
        throw new ApiError(404, ApiErrorCode.NotFound, `${address} is not on the suppression list`);
      }
      await deps.suppressions.remove(address);
      return { removed: address.toLowerCase() };
    }),
    route('GET', '/v1/webhooks/deliveries', async (_req, url) => {
      const { since, until } = range(url);
      return {
        deliveries: await webhookDeliveries(deps.db, {
          ...(text(url, 'subscription') === undefined ? {} : { subscription: text(url, 'subscription') }),
          ...(text(url, 'domain') === undefined ? {} : { domain: text(url, 'domain') }),
          ...(text(url, 'event_id') === undefined ? {} : { eventId: text(url, 'event_id') }),
          since,
          until,
          limit: intParam(url, 'limit', 100, 1000),
        }),
      };
    }),
    route('GET', '/v1/status', async () => {
      const s = await deps.stats?.();
      return { recorder: s ?? null };
    }),
  ];
}

/** Counts from Postgres, suspensions from KV, rates from the workers (each answers for its destinations). */
async function queueSummary(deps: ApiDeps, domain?: string): Promise<Destination[]> {
  const now = Date.now();
  const [counts, rates] = await Promise.all([queueCounts(deps.db, domain), workerRates(deps.nc)]);
  const suspensions = deps.controls.suspensions(now);
  const domains = new Set(counts.map((c) => c.domain));
  for (const d of suspensions.keys()) domains.add(d);
  if (domain !== undefined) {
    for (const d of [...domains]) if (d !== domain) domains.delete(d);
  }
  const byDomain = new Map(counts.map((c) => [c.domain, c]));
  return [...domains].map((d) => {
    const c = byDomain.get(d);
    const suspended = suspensions.has(d);
    const until = suspensions.get(d);
    const rate = rates.get(`domain:${d}`);
    return {
      domain: d,
      ready: c?.ready ?? 0,
      deferred: c?.deferred ?? 0,
      oldestAgeSeconds:
        c === undefined ? null : Math.max(0, Math.round((now - Date.parse(c.oldestAcceptedAt)) / 1000)),
      ratePerSecond: rate?.ratePerSecond ?? null,
      configuredRatePerSecond: rate?.configuredRatePerSecond ?? null,
      suspended,
      suspendedUntil: suspended ? (until?.toISOString() ?? null) : null,
    };
  });
}

/** Asks every worker for its limiter state for a short while; the lowest rate per key wins. */
async function workerRates(nc: NatsConnection) {
  const rates = new Map<string, { ratePerSecond: number | null; configuredRatePerSecond: number | null }>();
  try {
    const replies = await nc.requestMany(DESTINATION_STATUS_SUBJECT, '', { maxWait: 300, strategy: 'timer' });
    for await (const m of replies) {
      let reply: DestinationStatusReply;
      try {
        reply = m.json<DestinationStatusReply>();
      } catch {
        continue;
      }
      for (const d of reply.destinations ?? []) {
        const old = rates.get(d.key);
        if (
          old === undefined ||
          (d.ratePerSecond !== null && (old.ratePerSecond ?? Infinity) > d.ratePerSecond)
        ) {
          rates.set(d.key, {
            ratePerSecond: d.ratePerSecond,
            configuredRatePerSecond: d.configuredRatePerSecond,
          });
        }
      }
    }
  } catch {
    // No worker answering: the summary has no rates.
  }
  return rates;
}
