export { type AcceptOptions, Acceptor, type MessageWriter } from './acceptor.ts';
export {
  CertificateError,
  CertificateErrorCode,
  CertificateStore,
  type CertificateStoreOptions,
} from './certificates.ts';
export { type IngressConfig, IngressConfigSchema, ingressConfigFromEnv } from './config.ts';
export { AuthThrottle, ConnectionLimiter } from './limits.ts';
export { inNetworks, type ListenerOptions, SmtpListener } from './listener.ts';
export { RelayPolicy } from './policy.ts';
export { type IngressHandlerDeps, ingressHandler } from './sessions.ts';
