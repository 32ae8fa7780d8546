/** STARTTLS for the client side (RFC 3207): the handshake over an open connection and what it yields. */
import { isIP, type Socket } from 'node:net';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import { ClientPhase, SmtpClientError, SmtpClientErrorCode } from './client-errors.ts';

/**
 * 'opportunistic': STARTTLS when offered, any certificate (validation reported, not enforced
 * unless rejectUnauthorized), plaintext when not offered or refused, and a new plaintext
 * connection when the handshake fails (RFC 7435). 'required': no TLS is an error. 'none': never.
 */
export type TlsMode = 'opportunistic' | 'required' | 'none';

/** What became of TLS on a connection. */
export interface TlsStatus {
  /** The server offered STARTTLS (in its first EHLO reply). */
  readonly offered: boolean;
  /** The session runs over TLS. */
  readonly used: boolean;
  /** e.g. "TLSv1.3" */
  readonly version: string | undefined;
  /** e.g. "TLS_AES_256_GCM_SHA384" */
  readonly cipher: string | undefined;
  /** The certificate chain validated against the CAs and matched the server name. */
  readonly authorized: boolean;
  /** Why it did not validate (Node's error code, e.g. DEPTH_ZERO_SELF_SIGNED_CERT, ERR_TLS_CERT_ALTNAME_INVALID). */
  readonly authorizationError: string | undefined;
  /** The client's `verifyPeer` accepted the server (e.g. DANE, RFC 7672 §3); false without one. */
  readonly peerVerified: boolean;
  /** Why TLS was not used although it was not 'none' (opportunistic: offered but refused or failed). */
  readonly failure: string | undefined;
}

export const NO_TLS: TlsStatus = {
  offered: false,
  used: false,
  version: undefined,
  cipher: undefined,
  authorized: false,
  authorizationError: undefined,
  peerVerified: false,
  failure: undefined,
};

export interface HandshakeOptions {
  /** The name to send as SNI and to check the certificate against (default: the host, unless an IP). */
  readonly servername: string | undefined;
  readonly host: string;
  readonly ca: string | Buffer | readonly (string | Buffer)[] | undefined;
  readonly timeoutMs: number;
}

/**
 * Runs the TLS handshake over `socket` (after the 220 to STARTTLS). The certificate is never
 * refused here: validity is returned for the caller to judge.
 */
export async function handshake(socket: Socket, options: HandshakeOptions): Promise<TLSSocket> {
  const name = options.servername ?? (isIP(options.host) === 0 ? options.host : undefined);
  const secure = tlsConnect({
    socket,
    ...(name !== undefined ? { servername: name } : {}),
    host: name ?? options.host,
    ...(options.ca !== undefined ? { ca: options.ca as string | Buffer | (string | Buffer)[] } : {}),
    rejectUnauthorized: false,
    minVersion: 'TLSv1.2',
  });
  return await new Promise<TLSSocket>((resolve, reject) => {
    const fail = (error: SmtpClientError): void => {
      clearTimeout(timer);
      secure.destroy();
      reject(error);
    };
    const timer = setTimeout(
      () =>
        fail(
          new SmtpClientError(
            SmtpClientErrorCode.Timeout,
            `TLS handshake not done within ${options.timeoutMs} ms`,
            {
              phase: ClientPhase.TlsHandshake,
            },
          ),
        ),
      options.timeoutMs,
    );
    secure.once('secureConnect', () => {
      clearTimeout(timer);
      secure.off('error', onError);
      secure.off('close', onClose);
      resolve(secure);
    });
    const onError = (error: Error): void =>
      fail(
        new SmtpClientError(SmtpClientErrorCode.Tls, `TLS handshake failed: ${error.message}`, {
          cause: error,
          phase: ClientPhase.TlsHandshake,
        }),
      );
    const onClose = (): void =>
      fail(
        new SmtpClientError(SmtpClientErrorCode.Tls, 'connection closed during the TLS handshake', {
          phase: ClientPhase.TlsHandshake,
        }),
      );
    secure.once('error', onError);
    secure.once('close', onClose);
  });
}

export function tlsStatus(secure: TLSSocket): TlsStatus {
  const error = secure.authorizationError as unknown;
  return {
    offered: true,
    used: true,
    version: secure.getProtocol() ?? undefined,
    cipher: secure.getCipher()?.standardName ?? secure.getCipher()?.name,
    authorized: secure.authorized,
    authorizationError:
      secure.authorized || error === undefined || error === null
        ? undefined
        : error instanceof Error
          ? ((error as NodeJS.ErrnoException).code ?? error.message)
          : String(error),
    peerVerified: false,
    failure: undefined,
  };
}
