/** Errors of the local environment (binaries, child processes) with stable codes. */
export const LocalEnvErrorCode = {
  NatsServerUnavailable: 'PETREL_ERR_NATS_SERVER_UNAVAILABLE',
  ProcessExited: 'PETREL_ERR_PROCESS_EXITED',
  ProcessStartTimeout: 'PETREL_ERR_PROCESS_START_TIMEOUT',
  PostgresInit: 'PETREL_ERR_POSTGRES_INIT',
} as const;
export type LocalEnvErrorCode = (typeof LocalEnvErrorCode)[keyof typeof LocalEnvErrorCode];

export class LocalEnvError extends Error {
  readonly code: LocalEnvErrorCode;
  constructor(code: LocalEnvErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'LocalEnvError';
    this.code = code;
  }
}
