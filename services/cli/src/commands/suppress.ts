/** `petrel suppress list|add|remove`: the addresses mail is not sent to (bounced, or by hand). */
import type {
  RemovedResponse,
  Suppression,
  SuppressionResponse,
  SuppressionsResponse,
} from '@petrel/recorder';
import { ExitCode } from '../errors.ts';
import { type Column, clean, isoSeconds, json, orDash, table } from '../format.ts';
import type { CommandContext } from '../run.ts';

export interface ListOptions {
  readonly address?: string;
  readonly limit?: number;
}

export interface AddOptions {
  readonly reason?: string;
  /** ISO 8601 (args.ts turned a duration into a time). */
  readonly expires?: string;
}

const COLUMNS: readonly Column<Suppression>[] = [
  { header: 'ADDRESS', value: (s) => s.address, max: 60 },
  { header: 'SOURCE', value: (s) => s.source },
  { header: 'STATUS', value: (s) => orDash(s.status) },
  { header: 'CREATED', value: (s) => isoSeconds(s.createdAt) },
  { header: 'EXPIRES', value: (s) => isoSeconds(s.expiresAt) },
  { header: 'REASON', value: (s) => orDash(s.reason), max: 80 },
];

export async function suppressList(ctx: CommandContext, options: ListOptions): Promise<ExitCode> {
  const found = await ctx.client.get<SuppressionsResponse>('v1/suppressions', {
    query: { address: options.address, limit: options.limit },
    expect: 'suppressions',
  });
  const shown = found.suppressions.length;
  if (found.total > shown) ctx.note(`showing ${shown} of ${found.total}; raise --limit to see more`);
  if (ctx.json) ctx.out(json(found));
  else if (shown === 0)
    ctx.out(
      options.address === undefined
        ? 'No address is suppressed.\n'
        : `No suppressed address contains ${JSON.stringify(options.address)}.\n`,
    );
  else ctx.out(table(COLUMNS, found.suppressions));
  return ExitCode.Ok;
}

export async function suppressAdd(
  ctx: CommandContext,
  address: string,
  options: AddOptions,
): Promise<ExitCode> {
  const body: Record<string, string> = { address };
  if (options.reason !== undefined) body['reason'] = options.reason;
  if (options.expires !== undefined) body['expiresAt'] = options.expires;
  const added = await ctx.client.post<SuppressionResponse>('v1/suppressions', {
    body,
    expect: 'suppression',
  });
  const s = added.suppression;
  ctx.out(
    ctx.json
      ? json(added)
      : `${clean(s.address)} suppressed until ${isoSeconds(s.expiresAt)} (reason: ${clean(orDash(s.reason))})\n`,
  );
  return ExitCode.Ok;
}

export async function suppressRemove(ctx: CommandContext, address: string): Promise<ExitCode> {
  const removed = await ctx.client.delete<RemovedResponse>(`v1/suppressions/${encodeURIComponent(address)}`, {
    expect: 'removed',
  });
  ctx.out(ctx.json ? json(removed) : `${clean(removed.removed)} removed from the suppression list\n`);
  return ExitCode.Ok;
}
