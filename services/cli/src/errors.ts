/**
 * Errors of the API commands (petrel trace, queue, suppress) with stable codes. Errors the API
 * itself returns keep the API's code (`PETREL_ERR_API_...`) in ApiRequestError; the CLI's own
 * failures (nothing to talk to, no answer, a bad command line) are CliErrors.
 */
export const CliErrorCode = {
  /** The command line is wrong: an unknown option, a bad value, purge without --yes. Exit 2. */
  Usage: 'PETREL_ERR_CLI_USAGE',
  /** No API URL from --api, PETREL_API or a running `petrel dev` in the data dir. */
  NoApi: 'PETREL_ERR_CLI_NO_API',
  /** An API URL but no token from --token, PETREL_TOKEN or the data dir. */
  NoToken: 'PETREL_ERR_CLI_NO_TOKEN',
  /** The data dir's api.json or token file exists but cannot be read or makes no sense. */
  LocalApiFile: 'PETREL_ERR_CLI_LOCAL_API_FILE',
  /** Connection refused, reset, name not resolved, or no answer in time. */
  ApiUnreachable: 'PETREL_ERR_CLI_API_UNREACHABLE',
  /** An answer that is not the API's JSON (a proxy's error page, a redirect). */
  BadResponse: 'PETREL_ERR_CLI_BAD_RESPONSE',
} as const;
export type CliErrorCode = (typeof CliErrorCode)[keyof typeof CliErrorCode];

/** How the process ends: 0 done, 1 the API or the request failed, 2 the command line is wrong. */
export const ExitCode = { Ok: 0, Failed: 1, Usage: 2 } as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export class CliError extends Error {
  readonly code: CliErrorCode;
  /** A next step for the user, printed on its own line. */
  readonly hint: string | undefined;
  constructor(code: CliErrorCode, message: string, options?: ErrorOptions & { hint?: string }) {
    super(message, options);
    this.name = 'CliError';
    this.code = code;
    this.hint = options?.hint;
  }

  get exitCode(): ExitCode {
    return this.code === CliErrorCode.Usage ? ExitCode.Usage : ExitCode.Failed;
  }
}

/** The API answered with an error: its HTTP status and its own code and message. */
export class ApiRequestError extends Error {
  readonly status: number;
  /** The API's code (`PETREL_ERR_API_...`), as it sent it. */
  readonly code: string;
  readonly apiMessage: string;
  readonly hint: string | undefined;
  constructor(status: number, code: string, apiMessage: string, message: string, hint?: string) {
    super(message);
    this.name = 'ApiRequestError';
    this.status = status;
    this.code = code;
    this.apiMessage = apiMessage;
    this.hint = hint;
  }

  get exitCode(): ExitCode {
    return ExitCode.Failed;
  }
}

export function usage(message: string, hint?: string): CliError {
  return new CliError(CliErrorCode.Usage, message, hint === undefined ? {} : { hint });
}
