export { Acceptor, type AcceptorOptions } from './acceptor.ts';
export { type IngressConfig, IngressConfigSchema, ingressConfigFromEnv } from './config.ts';
export { type ListenerOptions, SmtpListener } from './listener.ts';
export { RelayPolicy } from './policy.ts';
