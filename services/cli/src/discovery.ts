/**
 * Which API the commands talk to, and with which token. Each is taken from the first of: the
 * flag (--api, --token), the environment (PETREL_API, PETREL_TOKEN), then the data dir of a
 * running `petrel dev` (its api.json and token file), so that `petrel trace <id>` just works next
 * to it. Where each came from is kept: error messages name it.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { CliError, CliErrorCode, usage } from './errors.ts';
import { API_TOKEN_FILE, LOCAL_API_FILE } from './local-api.ts';

export interface ApiTarget {
  /** The API's base URL, ending in `/` (an API behind a path prefix keeps it). */
  readonly url: URL;
  readonly token: string;
  /** Where the URL came from, for messages: `--api`, `PETREL_API`, or the api.json file. */
  readonly urlFrom: string;
  readonly tokenFrom: string;
  /** When the URL came from a data dir: the `petrel dev` that wrote it. */
  readonly local?: LocalApi;
}

export interface LocalApi {
  /** The data dir as given (for messages and the `petrel dev --data-dir` hint). */
  readonly dataDir: string;
  readonly apiFile: string;
  readonly pid: number | undefined;
}

export interface DiscoveryInput {
  readonly api?: string | undefined;
  readonly token?: string | undefined;
  /** As given on the command line (default ./.petrel); relative to `cwd`. */
  readonly dataDir: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly cwd: string;
  /** A file's text, or undefined when it does not exist; other failures throw. */
  readonly readText?: (path: string) => string | undefined;
}

interface LocalApiFile {
  url: string;
  tokenFile?: string;
  pid?: number;
}

function readTextFile(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

function nonEmpty(value: string | undefined): string | undefined {
  const v = value?.trim();
  return v === undefined || v === '' ? undefined : v;
}

/** A loopback URL may be given the local token: it cannot leave this machine. */
function isLoopback(url: URL): boolean {
  const host = url.hostname;
  return host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

export function resolveApi(input: DiscoveryInput): ApiTarget {
  const read = input.readText ?? readTextFile;
  const apiFile = join(input.dataDir, LOCAL_API_FILE);
  const readAt = (path: string, what: string): string | undefined => {
    try {
      return read(resolve(input.cwd, path));
    } catch (error) {
      throw new CliError(
        CliErrorCode.LocalApiFile,
        `cannot read ${what} ${path}: ${(error as Error).message}`,
        {
          cause: error,
        },
      );
    }
  };
  let url: URL;
  let urlFrom: string;
  let localTarget: LocalApi | undefined;
  // Read only when neither a flag nor the environment names the API.
  let localFile: LocalApiFile | undefined;
  const flagApi = nonEmpty(input.api);
  const envApi = nonEmpty(input.env['PETREL_API']);
  if (flagApi !== undefined) {
    url = apiUrl(flagApi, '--api');
    urlFrom = '--api';
  } else if (envApi !== undefined) {
    url = apiUrl(envApi, 'PETREL_API');
    urlFrom = 'PETREL_API';
  } else {
    const text = readAt(apiFile, "petrel dev's API file");
    if (text === undefined) {
      const tokenThere = readAt(join(input.dataDir, API_TOKEN_FILE), 'the token file') !== undefined;
      throw new CliError(
        CliErrorCode.NoApi,
        tokenThere
          ? `no API to talk to: petrel dev is not running with data dir ${input.dataDir} (${apiFile} is there only while it runs), and neither --api nor PETREL_API is set`
          : `no API to talk to: neither --api nor PETREL_API is set, and there is no running petrel dev with data dir ${input.dataDir} (no ${apiFile})`,
        {
          hint: `start \`petrel dev\` (and run this command with the same --data-dir), or pass --api URL and --token TOKEN (or set PETREL_API and PETREL_TOKEN) to use a cluster's API`,
        },
      );
    }
    localFile = parseLocalApiFile(text, apiFile);
    try {
      url = apiUrl(localFile.url, apiFile);
    } catch (error) {
      throw new CliError(CliErrorCode.LocalApiFile, (error as Error).message, { cause: error });
    }
    urlFrom = apiFile;
    localTarget = { dataDir: input.dataDir, apiFile, pid: localFile.pid };
  }

  let token: string | undefined = nonEmpty(input.token);
  let tokenFrom = '--token';
  if (token === undefined) {
    token = nonEmpty(input.env['PETREL_TOKEN']);
    tokenFrom = 'PETREL_TOKEN';
  }
  // The data dir's token only goes to petrel dev's own API or a loopback address: never elsewhere.
  if (token === undefined && (localTarget !== undefined || isLoopback(url))) {
    const tokenFile = localFile?.tokenFile ?? join(input.dataDir, API_TOKEN_FILE);
    const text = readAt(tokenFile, "petrel dev's token file");
    if (text === undefined && localTarget !== undefined) {
      throw new CliError(
        CliErrorCode.LocalApiFile,
        `petrel dev's token file ${tokenFile} (named in ${apiFile}) does not exist`,
        { hint: 'restart petrel dev (it makes the token), or pass --token' },
      );
    }
    token = text === undefined ? undefined : firstToken(text);
    if (text !== undefined && token === undefined) {
      throw new CliError(CliErrorCode.LocalApiFile, `petrel dev's token file ${tokenFile} holds no token`, {
        hint: 'delete it and restart petrel dev (it makes a new one), or pass --token',
      });
    }
    tokenFrom = `${tokenFile} (petrel dev's token)`;
  }
  if (token === undefined) {
    throw new CliError(CliErrorCode.NoToken, `no API token for ${url.href} (from ${urlFrom})`, {
      hint: 'pass --token TOKEN or set PETREL_TOKEN (a token from the API Secret of the cluster)',
    });
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing them is the point
  if (/[\s\u0000-\u001f\u007f]/.test(token)) {
    throw usage(`the token from ${tokenFrom} contains spaces or control characters`);
  }
  return {
    url,
    token,
    urlFrom,
    tokenFrom,
    ...(localTarget === undefined ? {} : { local: localTarget }),
  };
}

/** The base URL of the API: http(s), no credentials, no query; ends in `/` for relative paths. */
function apiUrl(raw: string, from: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw usage(`${from}: not a URL: ${JSON.stringify(raw)} (expected e.g. http://127.0.0.1:8026)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw usage(`${from}: the API URL must be http:// or https://, got ${JSON.stringify(raw)}`);
  if (url.username !== '' || url.password !== '')
    throw usage(`${from}: put the token in --token or PETREL_TOKEN, not in the URL`);
  url.search = '';
  url.hash = '';
  if (!url.pathname.endsWith('/')) url.pathname = `${url.pathname}/`;
  return url;
}

function parseLocalApiFile(text: string, path: string): LocalApiFile {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new CliError(CliErrorCode.LocalApiFile, `${path} is not JSON`, {
      hint: 'delete it and restart petrel dev',
    });
  }
  const v = value as Partial<Record<keyof LocalApiFile, unknown>> | null;
  if (
    typeof v !== 'object' ||
    v === null ||
    typeof v.url !== 'string' ||
    (v.tokenFile !== undefined && typeof v.tokenFile !== 'string') ||
    (v.pid !== undefined && !Number.isInteger(v.pid))
  ) {
    throw new CliError(CliErrorCode.LocalApiFile, `${path} does not hold {"url", "tokenFile", "pid"}`, {
      hint: 'delete it and restart petrel dev',
    });
  }
  return {
    url: v.url,
    ...(v.tokenFile === undefined ? {} : { tokenFile: v.tokenFile as string }),
    ...(v.pid === undefined ? {} : { pid: v.pid as number }),
  };
}

/** As the API reads its token file: the first line that is neither blank nor a # comment. */
function firstToken(text: string): string | undefined {
  return text
    .split('\n')
    .map((l) => l.trim())
    .find((l) => l !== '' && !l.startsWith('#'));
}

/** Whether a process still runs (EPERM: it does, as another user). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
