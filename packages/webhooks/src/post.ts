/**
 * One POST of a webhook body with undici. Resolves with the outcome (never rejects): a 2xx is
 * delivered; any other status, a connection error or no answer within the timeout is a failure to
 * retry. Redirects are not followed (a 3xx is a failure): the signed request goes to the URL the
 * subscription names and nowhere else.
 */
import { type Dispatcher, request } from 'undici';
import { WebhookError, WebhookErrorCode } from './errors.ts';

export interface PostOutcome {
  readonly ok: boolean;
  /** The receiver's status; undefined when there was no answer. */
  readonly statusCode: number | undefined;
  readonly durationMs: number;
  /** Why it failed; undefined for a 2xx. */
  readonly error: WebhookError | undefined;
}

/** How much of a failure answer's body goes into the delivery log. */
const ERROR_BODY_BYTES = 256;

async function bodySnippet(body: Dispatcher.ResponseData['body']): Promise<string> {
  let text = '';
  try {
    for await (const chunk of body) {
      text += Buffer.from(chunk as Uint8Array).toString('utf8');
      if (text.length >= ERROR_BODY_BYTES) break;
    }
  } catch {
    // The answer's status is what counts; a broken body adds nothing.
  }
  // Leaving the loop early destroys the stream: that connection is not reused.
  return text.slice(0, ERROR_BODY_BYTES).replace(/\s+/g, ' ').trim();
}

export async function postWebhook(
  dispatcher: Dispatcher,
  url: string,
  body: Uint8Array | string,
  headers: Record<string, string>,
  timeoutMs: number,
): Promise<PostOutcome> {
  const started = performance.now();
  const elapsed = (): number => Math.round(performance.now() - started);
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    const response = await request(url, {
      method: 'POST',
      body,
      headers,
      dispatcher,
      signal,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    });
    const status = response.statusCode;
    if (status >= 200 && status < 300) {
      // Read and discarded (bounded) so that the connection can be reused.
      await response.body.dump({ limit: 64 * 1024 }).catch(() => undefined);
      return { ok: true, statusCode: status, durationMs: elapsed(), error: undefined };
    }
    const snippet = await bodySnippet(response.body);
    return {
      ok: false,
      statusCode: status,
      durationMs: elapsed(),
      error: new WebhookError(
        WebhookErrorCode.Status,
        `HTTP ${status}${snippet === '' ? '' : `: ${snippet}`}`,
        {
          statusCode: status,
        },
      ),
    };
  } catch (error) {
    const durationMs = elapsed();
    if (signal.aborted || isTimeout(error)) {
      return {
        ok: false,
        statusCode: undefined,
        durationMs,
        error: new WebhookError(WebhookErrorCode.Timeout, `no answer within ${timeoutMs} ms`, {
          cause: error,
        }),
      };
    }
    return {
      ok: false,
      statusCode: undefined,
      durationMs,
      error: new WebhookError(WebhookErrorCode.Request, describe(error), { cause: error }),
    };
  }
}

function isTimeout(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return (
    code === 'UND_ERR_HEADERS_TIMEOUT' ||
    code === 'UND_ERR_BODY_TIMEOUT' ||
    code === 'UND_ERR_CONNECT_TIMEOUT'
  );
}

/** The innermost cause's code and message: "ECONNREFUSED: connect ECONNREFUSED 127.0.0.1:9" */
function describe(error: unknown): string {
  let e: unknown = error;
  while (e instanceof Error && e.cause instanceof Error) e = e.cause;
  if (!(e instanceof Error)) return String(e);
  const code = (e as { code?: unknown }).code;
  return typeof code === 'string' && !e.message.includes(code) ? `${code}: ${e.message}` : e.message;
}
