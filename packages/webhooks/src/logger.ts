/** What the webhooks log through (a pino logger fits); passed in by the service. */
export interface WebhookLogger {
  info(fields: object, msg: string): void;
  warn(fields: object, msg: string): void;
  error(fields: object, msg: string): void;
}
