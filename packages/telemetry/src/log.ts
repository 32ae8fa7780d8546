import { pino } from 'pino';

export type Logger = pino.Logger;

/** JSON lines on stdout (or a file descriptor), one logger per component. Credentials are never logged. */
export function createLogger(component: string, options: { level?: string } = {}): Logger {
  return pino({
    name: component,
    level: options.level ?? process.env['PETREL_LOG_LEVEL'] ?? 'info',
    base: { component, pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: ['password', '*.password', 'authorization', '*.authorization'], censor: '[redacted]' },
  });
}
