/** Failure codes of the controller runtime; stable, so callers and logs can branch on them. */
export const KubeErrorCode = {
  /** No --kubeconfig, no KUBECONFIG and not running in a pod (no service-account token). */
  NoConfig: 'PETREL_ERR_KUBE_NO_CONFIG',
  /** A kubeconfig file that cannot be read or names no usable cluster. */
  InvalidConfig: 'PETREL_ERR_KUBE_INVALID_CONFIG',
  /** An object without the fields an operation needs (name, uid, apiVersion, kind). */
  InvalidObject: 'PETREL_ERR_KUBE_INVALID_OBJECT',
  /** Options out of range (worker count, timings). */
  InvalidOptions: 'PETREL_ERR_KUBE_INVALID_OPTIONS',
  /** waitForSync gave up: the informer was closed or the caller aborted. */
  NotSynced: 'PETREL_ERR_KUBE_NOT_SYNCED',
  /** An API request answered with a non-2xx status (the HTTP status is in `status`). */
  Api: 'PETREL_ERR_KUBE_API',
  /** The API server did not answer within the caller's deadline. */
  Timeout: 'PETREL_ERR_KUBE_TIMEOUT',
  /** start() on a component that was already started or stopped. */
  AlreadyStarted: 'PETREL_ERR_KUBE_ALREADY_STARTED',
} as const;
export type KubeErrorCode = (typeof KubeErrorCode)[keyof typeof KubeErrorCode];

export interface KubeErrorDetails {
  /** HTTP status of a failed API request. */
  status?: number;
  /** The API server's Status `reason` (NotFound, Conflict, Expired...). */
  reason?: string;
}

export class KubeError extends Error {
  readonly code: KubeErrorCode;
  readonly status: number | undefined;
  readonly reason: string | undefined;

  constructor(code: KubeErrorCode, message: string, details: KubeErrorDetails = {}, options?: ErrorOptions) {
    super(message, options);
    this.name = 'KubeError';
    this.code = code;
    this.status = details.status;
    this.reason = details.reason;
  }
}

/**
 * The HTTP status of a failed API call: client-node's ApiException carries it in `code`, its Watch
 * in `statusCode`, ours in `status`. Undefined for network errors.
 */
export function httpStatusOf(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  if (error instanceof KubeError) return error.status;
  for (const field of ['code', 'statusCode'] as const) {
    const value = (error as Record<string, unknown>)[field];
    if (typeof value === 'number' && value >= 100 && value < 600) return value;
  }
  return undefined;
}

export function isNotFound(error: unknown): boolean {
  return httpStatusOf(error) === 404;
}

/** 409: an optimistic-concurrency precondition (resourceVersion) failed, or a create raced. */
export function isConflict(error: unknown): boolean {
  return httpStatusOf(error) === 409;
}

/** 410: the resourceVersion is older than what etcd still keeps (compacted). */
export function isGone(error: unknown): boolean {
  return httpStatusOf(error) === 410;
}
