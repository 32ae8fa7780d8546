import {
  createConfiguration,
  HttpMethod,
  type KubeConfig,
  type ResponseContext,
  ServerConfiguration,
  Watch,
} from '@kubernetes/client-node';
import { KubeError, KubeErrorCode } from './errors.ts';

export type WatchEventHandler = (type: string, object: unknown) => void;

export interface WatchHandle {
  abort(): void;
}

/**
 * The two calls an informer makes. Objects come back as plain JSON: client-node's typed list
 * deserialisation turns timestamps into Date objects while watch events keep strings, and a cache
 * fed by both would hold two shapes of the same object.
 */
export interface ListWatchClient {
  /** GET `path` (a collection) with `query`; resolves to the parsed JSON body. */
  list(path: string, query: Readonly<Record<string, string>>): Promise<unknown>;
  /**
   * Opens a watch; `onDone` is called once when it ends (error or null). The promise resolves once
   * the request is under way, with a handle that closes it.
   */
  watch(
    path: string,
    query: Readonly<Record<string, string | number | boolean>>,
    onEvent: WatchEventHandler,
    onDone: (error: unknown) => void,
  ): Promise<WatchHandle>;
}

export interface ListWatchClientOptions {
  /** Deadline of one list page (default 60 s). */
  listTimeoutMs?: number;
}

/** A ListWatchClient on client-node's HTTP stack (auth, TLS and proxies from the KubeConfig). */
export function listWatchClient(
  kubeConfig: KubeConfig,
  options: ListWatchClientOptions = {},
): ListWatchClient {
  const cluster = kubeConfig.getCurrentCluster();
  if (!cluster) throw new KubeError(KubeErrorCode.InvalidConfig, 'the kubeconfig has no current cluster');
  const configuration = createConfiguration({
    baseServer: new ServerConfiguration(cluster.server, {}),
    authMethods: { default: kubeConfig },
  });
  const listTimeoutMs = options.listTimeoutMs ?? 60_000;
  const watcher = new Watch(kubeConfig);
  return {
    async list(path, query) {
      const request = configuration.baseServer.makeRequestContext(path, HttpMethod.GET);
      for (const [name, value] of Object.entries(query)) request.setQueryParam(name, value);
      request.setHeaderParam('Accept', 'application/json');
      request.setSignal(AbortSignal.timeout(listTimeoutMs));
      await kubeConfig.applySecurityAuthentication(request);
      let response: ResponseContext;
      try {
        response = await configuration.httpApi.send(request).toPromise();
      } catch (error) {
        if (error instanceof Error && error.name === 'TimeoutError') {
          throw new KubeError(
            KubeErrorCode.Timeout,
            `GET ${path}: no answer within ${listTimeoutMs} ms`,
            {},
            { cause: error },
          );
        }
        throw error;
      }
      const text = await response.body.text();
      if (response.httpStatusCode < 200 || response.httpStatusCode > 299) {
        throw apiError(`GET ${path}`, response.httpStatusCode, text);
      }
      return JSON.parse(text) as unknown;
    },
    async watch(path, query, onEvent, onDone) {
      const controller = await watcher.watch(path, query, (type, object) => onEvent(type, object), onDone);
      return { abort: () => controller.abort() };
    },
  };
}

/** A KubeError from a non-2xx answer, with the Status object's reason and message when there is one. */
export function apiError(what: string, status: number, body: string): KubeError {
  let reason: string | undefined;
  let message = body.slice(0, 300);
  try {
    const parsed = JSON.parse(body) as { reason?: unknown; message?: unknown };
    if (typeof parsed.reason === 'string') reason = parsed.reason;
    if (typeof parsed.message === 'string') message = parsed.message;
  } catch {
    // Not a Status object (e.g. a proxy's HTML page): keep the start of the body.
  }
  return new KubeError(KubeErrorCode.Api, `${what}: HTTP ${status}: ${message}`, { status, reason });
}
