/**
 * `petrel queue [destination]` and `petrel queue retry|suspend|resume|bounce|purge <destination>`.
 * Bounce and purge take mail out of the queue for good, so they need --yes: always, in a terminal
 * or in a script alike (no prompt: a pasted command must not hang, nor behave differently in CI).
 */

import type { Destination, DestinationResponse, OperationResult, QueueResponse } from '@petrel/recorder';
import { ApiTimeouts } from '../api-client.ts';
import { ExitCode, usage } from '../errors.ts';
import { age, type Column, clean, count, isoSeconds, json, keyValues, rate, table } from '../format.ts';
import { startProgress } from '../progress.ts';
import type { CommandContext } from '../run.ts';

export const QueueOperation = {
  Retry: 'retry',
  Suspend: 'suspend',
  Resume: 'resume',
  Bounce: 'bounce',
  Purge: 'purge',
} as const;
export type QueueOperation = (typeof QueueOperation)[keyof typeof QueueOperation];

/** What each operation does, for `--help` and the confirmation message. */
export const OPERATION_SUMMARY: Record<QueueOperation, string> = {
  retry: 'try the deferred mail of a destination now, instead of at its next retry time',
  suspend: 'stop delivering to a destination (mail waits in the queue) until resumed or --until',
  resume: 'deliver to a suspended destination again',
  bounce: "return a destination's deferred mail to the senders, with a DSN (needs --yes)",
  purge: "drop a destination's deferred mail without telling the senders (needs --yes)",
};

export interface OperationOptions {
  readonly until?: string;
  readonly reason?: string;
  readonly yes?: boolean;
}

function path(domain: string): string {
  return `v1/queue/${encodeURIComponent(domain)}`;
}

export async function queueList(ctx: CommandContext): Promise<ExitCode> {
  const found = await ctx.client.get<QueueResponse>('v1/queue', { expect: 'destinations' });
  if (ctx.json) ctx.out(json(found));
  else if (found.destinations.length === 0)
    ctx.out('No mail queued: no destination has ready or deferred recipients, and none is suspended.\n');
  else ctx.out(table(DESTINATION_COLUMNS, found.destinations));
  return ExitCode.Ok;
}

export async function queueShow(ctx: CommandContext, domain: string): Promise<ExitCode> {
  const found = await ctx.client.get<DestinationResponse>(path(domain), { expect: 'destination' });
  if (ctx.json) {
    ctx.out(json(found));
    return ExitCode.Ok;
  }
  const d = found.destination;
  ctx.out(
    keyValues([
      ['Destination', d.domain],
      ['Ready', count(d.ready, 'recipient')],
      ['Deferred', count(d.deferred, 'recipient')],
      ['Oldest', d.oldestAgeSeconds === null ? '-' : `${age(d.oldestAgeSeconds)} in the queue`],
      ['Rate now', rate(d.ratePerSecond)],
      ['Rate configured', rate(d.configuredRatePerSecond)],
      ['Suspended', suspension(d)],
    ]),
  );
  return ExitCode.Ok;
}

/** The usage error for bounce or purge without --yes; nothing is sent. */
export function checkOperation(op: QueueOperation, domain: string, options: OperationOptions): void {
  if ((op === QueueOperation.Bounce || op === QueueOperation.Purge) && options.yes !== true) {
    throw usage(
      op === QueueOperation.Bounce
        ? `petrel queue bounce returns every deferred message for ${domain} to its sender; nothing is done without --yes`
        : `petrel queue purge drops every deferred message for ${domain} without telling the senders; nothing is done without --yes`,
      `to go ahead: petrel queue ${op} ${domain} --yes`,
    );
  }
}

export async function queueOperation(
  ctx: CommandContext,
  op: QueueOperation,
  domain: string,
  options: OperationOptions,
): Promise<ExitCode> {
  const body: Record<string, string> = {};
  if (op === QueueOperation.Suspend && options.until !== undefined) body['until'] = options.until;
  if (op === QueueOperation.Bounce && options.reason !== undefined) body['reason'] = options.reason;
  // Retry, bounce and purge walk every deferred entry of the destination: that may take a while.
  const long = op === QueueOperation.Retry || op === QueueOperation.Bounce || op === QueueOperation.Purge;
  const progress =
    long && !ctx.json ? startProgress({ stream: ctx.stderr, label: `${VERB[op]} ${domain}` }) : undefined;
  let result: OperationResult;
  try {
    result = await ctx.client.post<OperationResult>(`${path(domain)}/${op}`, {
      body,
      timeoutMs: ApiTimeouts.operationMs,
      expect: 'count',
    });
  } finally {
    progress?.stop();
  }
  ctx.out(ctx.json ? json(result) : `${clean(operationText(op, result, options))}\n`);
  return ExitCode.Ok;
}

const VERB: Record<QueueOperation, string> = {
  retry: 'retrying the deferred mail of',
  suspend: 'suspending',
  resume: 'resuming',
  bounce: 'bouncing the deferred mail of',
  purge: 'purging the deferred mail of',
};

function operationText(op: QueueOperation, r: OperationResult, options: OperationOptions): string {
  const n = count(r.count, 'deferred message');
  switch (op) {
    case QueueOperation.Retry:
      return `${r.domain}: ${n} queued for delivery now`;
    case QueueOperation.Suspend:
      return options.until === undefined
        ? `${r.domain}: delivery suspended until resumed (petrel queue resume ${r.domain})`
        : `${r.domain}: delivery suspended until ${isoSeconds(options.until)}`;
    case QueueOperation.Resume:
      return `${r.domain}: delivery resumed`;
    case QueueOperation.Bounce:
      return `${r.domain}: ${n} returned to the senders (DSN queued)`;
    case QueueOperation.Purge:
      return `${r.domain}: ${n} dropped (no DSN)`;
  }
}

function suspension(d: Destination): string {
  if (!d.suspended) return 'no';
  return d.suspendedUntil === null ? 'until resumed' : `until ${isoSeconds(d.suspendedUntil)}`;
}

/** `2/s of 10/s`: lowered after throttling replies; just the rate when it is the configured one. */
function rates(d: Destination): string {
  if (d.ratePerSecond === null) return rate(d.configuredRatePerSecond);
  if (d.configuredRatePerSecond === null || d.configuredRatePerSecond === d.ratePerSecond)
    return rate(d.ratePerSecond);
  return `${rate(d.ratePerSecond)} of ${rate(d.configuredRatePerSecond)}`;
}

const DESTINATION_COLUMNS: readonly Column<Destination>[] = [
  { header: 'DESTINATION', value: (d) => d.domain, max: 60 },
  { header: 'READY', value: (d) => String(d.ready), align: 'right' },
  { header: 'DEFERRED', value: (d) => String(d.deferred), align: 'right' },
  { header: 'OLDEST', value: (d) => age(d.oldestAgeSeconds), align: 'right' },
  { header: 'RATE', value: rates },
  { header: 'SUSPENDED', value: (d) => (d.suspended ? suspension(d) : '-') },
];
