/**
 * The trace API over HTTP (undici): bearer token, JSON in and out, and every failure turned into
 * an error that says what to do: unreachable (names the URL and where it came from), token
 * refused (names where the token came from), not found, Postgres down, no workers.
 */
import { type Dispatcher, request } from 'undici';
import type { ApiTarget } from './discovery.ts';
import { ApiRequestError, CliError, CliErrorCode } from './errors.ts';

export const ApiTimeouts = {
  /** Reads are answered from Postgres, bounded by a limit: seconds at most. */
  readMs: 30_000,
  /** The API waits up to 120 s for the workers (bounce and purge walk every deferred entry). */
  operationMs: 180_000,
} as const;

/** The API's codes the CLI words its own messages for (services/recorder/src/api/server.ts). */
const ApiCode = {
  Unauthorized: 'PETREL_ERR_API_UNAUTHORIZED',
  NotFound: 'PETREL_ERR_API_NOT_FOUND',
  DatabaseUnavailable: 'PETREL_ERR_API_DATABASE_UNAVAILABLE',
  NoWorkers: 'PETREL_ERR_API_NO_WORKERS',
} as const;

export type Query = Readonly<Record<string, string | number | undefined>>;

export interface ApiClientOptions {
  readonly target: ApiTarget;
  readonly dispatcher: Dispatcher;
  /** Whether petrel dev's process still runs (for the hint when its API does not answer). */
  readonly processAlive?: (pid: number) => boolean;
}

interface RequestOptions {
  readonly query?: Query;
  readonly body?: unknown;
  readonly timeoutMs?: number;
  /** The answer's top-level field that must be there (else it is not the API answering). */
  readonly expect: string;
}

const USER_AGENT = 'petrel-cli/0.1';
const MAX_BODY = 64 * 1024 * 1024;

export class ApiClient {
  readonly #target: ApiTarget;
  readonly #dispatcher: Dispatcher;
  readonly #alive: ((pid: number) => boolean) | undefined;

  constructor(options: ApiClientOptions) {
    this.#target = options.target;
    this.#dispatcher = options.dispatcher;
    this.#alive = options.processAlive;
  }

  get target(): ApiTarget {
    return this.#target;
  }

  get<T>(path: string, options: RequestOptions): Promise<T> {
    return this.#request<T>('GET', path, options);
  }

  post<T>(path: string, options: RequestOptions): Promise<T> {
    return this.#request<T>('POST', path, options);
  }

  delete<T>(path: string, options: RequestOptions): Promise<T> {
    return this.#request<T>('DELETE', path, options);
  }

  /** `path` is relative to the API's base URL, its segments already encoded. */
  async #request<T>(method: 'GET' | 'POST' | 'DELETE', path: string, options: RequestOptions): Promise<T> {
    const url = new URL(path.replace(/^\//, ''), this.#target.url);
    for (const [name, value] of Object.entries(options.query ?? {})) {
      if (value !== undefined) url.searchParams.set(name, String(value));
    }
    const timeout = options.timeoutMs ?? ApiTimeouts.readMs;
    const headers: Record<string, string> = {
      accept: 'application/json',
      authorization: `Bearer ${this.#target.token}`,
      'user-agent': USER_AGENT,
    };
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    let status: number;
    let contentType: string;
    let text: string;
    try {
      const response = await request(url, {
        method,
        headers,
        ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
        dispatcher: this.#dispatcher,
        headersTimeout: timeout,
        bodyTimeout: timeout,
      });
      status = response.statusCode;
      contentType = String(response.headers['content-type'] ?? '');
      const length = Number(response.headers['content-length'] ?? 0);
      if (length > MAX_BODY) {
        await response.body.dump();
        throw this.#badResponse(`answered ${status} with ${length} bytes, more than the CLI reads`);
      }
      text = await response.body.text();
    } catch (error) {
      if (error instanceof CliError) throw error;
      throw this.#unreachable(error, timeout);
    }

    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw this.#badResponse(
        `answered ${status} with something that is not JSON (${contentType || 'no content type'})`,
      );
    }
    if (status >= 200 && status < 300) {
      if (typeof body !== 'object' || body === null || !(options.expect in body)) {
        throw this.#badResponse(`answered ${status} without "${options.expect}" (is it the Petrel API?)`);
      }
      return body as T;
    }
    throw this.#apiError(status, body);
  }

  #badResponse(what: string): CliError {
    return new CliError(
      CliErrorCode.BadResponse,
      `the API at ${this.#target.url.href} (from ${this.#target.urlFrom}) ${what}`,
      { hint: 'check that the URL is the Petrel API (the recorder), not a proxy or another service' },
    );
  }

  #unreachable(error: unknown, timeoutMs: number): CliError {
    const t = this.#target;
    const reason = connectionFailure(error, timeoutMs);
    let hint: string;
    if (t.local !== undefined) {
      const { pid, dataDir, apiFile } = t.local;
      hint =
        pid !== undefined && this.#alive !== undefined && !this.#alive(pid)
          ? `petrel dev (pid ${pid}), which wrote ${apiFile}, is not running any more; start it again: petrel dev --data-dir ${dataDir}`
          : `is petrel dev running? start it with: petrel dev --data-dir ${dataDir}`;
    } else {
      hint = `check the URL (from ${t.urlFrom}) and that the recorder's API can be reached from here`;
    }
    return new CliError(
      CliErrorCode.ApiUnreachable,
      `cannot reach the API at ${t.url.href} (from ${t.urlFrom}): ${reason}`,
      { cause: error, hint },
    );
  }

  #apiError(status: number, body: unknown): Error {
    const e = (body as { error?: { code?: unknown; message?: unknown } } | null)?.error;
    if (typeof e?.code !== 'string' || typeof e.message !== 'string') {
      return this.#badResponse(`answered ${status} without an error code`);
    }
    const t = this.#target;
    const at = `the API at ${t.url.href}`;
    const fail = (message: string, hint?: string) =>
      new ApiRequestError(status, e.code as string, e.message as string, message, hint);
    if (status === 401 || e.code === ApiCode.Unauthorized) {
      return fail(
        `${at} refused the token from ${t.tokenFrom}: ${e.message}`,
        t.tokenFrom.endsWith("(petrel dev's token)")
          ? 'the token file belongs to another petrel dev: run this command with the same --data-dir as petrel dev'
          : 'pass the right token with --token or PETREL_TOKEN (a line of the API token Secret)',
      );
    }
    if (status === 404) {
      return /^no such endpoint/.test(e.message)
        ? fail(`${at} has no such endpoint: is ${t.url.href} the Petrel API (a path prefix missing)?`)
        : fail(`not found: ${e.message}`);
    }
    if (e.code === ApiCode.DatabaseUnavailable) {
      return fail(`${at} cannot reach Postgres right now; try again shortly`);
    }
    if (e.code === ApiCode.NoWorkers) {
      return fail(
        `no delivery worker is running to carry out the operation`,
        t.local === undefined
          ? 'check that the delivery workers run (kubectl get pods)'
          : `petrel dev runs one: see ${t.local.dataDir}/logs/delivery.log`,
      );
    }
    if (status === 400 || status === 413) return fail(`the API refused the request: ${e.message}`);
    return fail(`${at} answered ${status}: ${e.message}`);
  }
}

/** What went wrong on the way, in words: refused, not found, timed out, TLS, reset. */
function connectionFailure(error: unknown, timeoutMs: number): string {
  // Several addresses tried (localhost: ::1 and 127.0.0.1): the first one's reason.
  const e = (error instanceof AggregateError && error.errors.length > 0 ? error.errors[0] : error) as {
    code?: string;
    message?: string;
  };
  switch (e?.code) {
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'host name not found';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return 'no route to host';
    case 'ECONNRESET':
    case 'UND_ERR_SOCKET':
      return 'the connection was closed before an answer';
    case 'ETIMEDOUT':
    case 'UND_ERR_CONNECT_TIMEOUT':
      return 'connection timed out';
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
      return `no answer within ${Math.round(timeoutMs / 1000)} s`;
    default:
      return e?.message ?? String(error);
  }
}
