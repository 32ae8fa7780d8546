/**
 * The trace API's OpenAPI 3.1 document, served at /openapi.json. server.test.ts checks that
 * every route the server has is described here and the other way round.
 */
const error = { $ref: '#/components/responses/Error' };
const json = (schema: unknown, description = 'OK') => ({
  description,
  content: { 'application/json': { schema } },
});
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const domainParam = {
  name: 'domain',
  in: 'path',
  required: true,
  schema: { type: 'string' },
  description: 'Destination domain',
};
const timeRange = [
  {
    name: 'since',
    in: 'query',
    schema: { type: 'string', format: 'date-time' },
    description: 'Default: the retention ago',
  },
  {
    name: 'until',
    in: 'query',
    schema: { type: 'string', format: 'date-time' },
    description: 'Default: now',
  },
];
const limit = (max: number, dflt: number) => ({
  name: 'limit',
  in: 'query',
  schema: { type: 'integer', minimum: 1, maximum: max, default: dflt },
});
const errors = { 400: error, 401: error, 503: error };
const operation = (summary: string, body?: unknown) => ({
  post: {
    summary,
    tags: ['queue'],
    parameters: [domainParam],
    ...(body === undefined ? {} : { requestBody: { content: { 'application/json': { schema: body } } } }),
    responses: { 200: json(ref('OperationResult')), ...errors, 502: error, 504: error },
  },
});

export const openApiDocument = {
  openapi: '3.1.0',
  info: {
    title: 'Petrel trace API',
    version: '1.0.0',
    description:
      'Where is my message? Message lookups and timelines from Postgres, the queue per destination and its operations, the suppression list and the webhook delivery log. See docs/api.md.',
  },
  security: [{ bearer: [] }],
  paths: {
    '/v1/messages': {
      get: {
        summary: 'Find messages',
        description:
          'By queue id, Message-ID header field, sender or recipient address, and time; `q` takes any of them. Newest first.',
        tags: ['trace'],
        parameters: [
          {
            name: 'q',
            in: 'query',
            schema: { type: 'string' },
            description: 'A queue id, a Message-ID or an address',
          },
          { name: 'queue_id', in: 'query', schema: { type: 'string' } },
          {
            name: 'message_id',
            in: 'query',
            schema: { type: 'string' },
            description: 'Message-ID header field, brackets optional',
          },
          { name: 'sender', in: 'query', schema: { type: 'string' } },
          { name: 'recipient', in: 'query', schema: { type: 'string' }, description: 'Case-insensitive' },
          ...timeRange,
          limit(1000, 50),
        ],
        responses: {
          200: json({
            type: 'object',
            required: ['messages'],
            properties: { messages: { type: 'array', items: ref('Message') } },
          }),
          ...errors,
        },
      },
    },
    '/v1/messages/{queueId}': {
      get: {
        summary: 'A message and its timeline',
        description:
          'Accepted, each attempt with the remote reply, the outcome per recipient, and the DSN sent.',
        tags: ['trace'],
        parameters: [{ name: 'queueId', in: 'path', required: true, schema: { type: 'string' } }],
        responses: {
          200: json({
            type: 'object',
            required: ['message', 'timeline'],
            properties: { message: ref('Message'), timeline: { type: 'array', items: ref('TimelineEntry') } },
          }),
          404: error,
          ...errors,
        },
      },
    },
    '/v1/queue': {
      get: {
        summary: 'Queue summary per destination',
        tags: ['queue'],
        responses: {
          200: json({
            type: 'object',
            required: ['destinations'],
            properties: { destinations: { type: 'array', items: ref('Destination') } },
          }),
          ...errors,
        },
      },
    },
    '/v1/queue/{domain}': {
      get: {
        summary: 'Queue summary of one destination',
        tags: ['queue'],
        parameters: [domainParam],
        responses: {
          200: json({ type: 'object', properties: { destination: ref('Destination') } }),
          ...errors,
        },
      },
    },
    '/v1/queue/{domain}/retry': operation('Retry the deferred mail of a destination now'),
    '/v1/queue/{domain}/suspend': operation('Suspend delivery to a destination', {
      type: 'object',
      properties: { until: { type: 'string', format: 'date-time', description: 'Absent: until resumed' } },
    }),
    '/v1/queue/{domain}/resume': operation('Resume a suspended destination'),
    '/v1/queue/{domain}/bounce': operation("Return a destination's deferred mail to the senders (DSN)", {
      type: 'object',
      properties: { reason: { type: 'string', maxLength: 500 } },
    }),
    '/v1/queue/{domain}/purge': operation("Drop a destination's deferred mail without DSN"),
    '/v1/suppressions': {
      get: {
        summary: 'The suppression list (entries in force)',
        tags: ['suppressions'],
        parameters: [
          {
            name: 'address',
            in: 'query',
            schema: { type: 'string' },
            description: 'Substring, case-insensitive',
          },
          limit(10000, 100),
        ],
        responses: {
          200: json({
            type: 'object',
            properties: {
              total: { type: 'integer' },
              suppressions: { type: 'array', items: ref('Suppression') },
            },
          }),
          ...errors,
        },
      },
      post: {
        summary: 'Suppress an address',
        tags: ['suppressions'],
        requestBody: {
          required: true,
          content: {
            'application/json': {
              schema: {
                type: 'object',
                required: ['address'],
                properties: {
                  address: { type: 'string' },
                  reason: { type: 'string', maxLength: 500 },
                  expiresAt: {
                    type: 'string',
                    format: 'date-time',
                    description: 'Default: 30 days from now',
                  },
                },
              },
            },
          },
        },
        responses: {
          201: json({ type: 'object', properties: { suppression: ref('Suppression') } }, 'Created'),
          ...errors,
        },
      },
    },
    '/v1/suppressions/{address}': {
      delete: {
        summary: 'Remove an address from the suppression list',
        tags: ['suppressions'],
        parameters: [{ name: 'address', in: 'path', required: true, schema: { type: 'string' } }],
        responses: {
          200: json({ type: 'object', properties: { removed: { type: 'string' } } }),
          404: error,
          ...errors,
        },
      },
    },
    '/v1/webhooks/deliveries': {
      get: {
        summary: 'Webhook delivery log (one entry per attempt)',
        tags: ['webhooks'],
        parameters: [
          { name: 'subscription', in: 'query', schema: { type: 'string' } },
          { name: 'domain', in: 'query', schema: { type: 'string' } },
          { name: 'event_id', in: 'query', schema: { type: 'string' } },
          ...timeRange,
          limit(1000, 100),
        ],
        responses: {
          200: json({
            type: 'object',
            properties: { deliveries: { type: 'array', items: ref('WebhookDelivery') } },
          }),
          ...errors,
        },
      },
    },
    '/v1/status': {
      get: {
        summary: "The recorder's figures: lag, events written",
        tags: ['status'],
        responses: {
          200: json({ type: 'object', properties: { recorder: ref('RecorderStats') } }),
          ...errors,
        },
      },
    },
  },
  components: {
    securitySchemes: {
      bearer: {
        type: 'http',
        scheme: 'bearer',
        description: 'A token from the API Secret (PETREL_API_TOKEN_FILE)',
      },
    },
    responses: {
      Error: {
        description: 'An error, with a stable code',
        content: {
          'application/json': {
            schema: {
              type: 'object',
              required: ['error'],
              properties: {
                error: {
                  type: 'object',
                  required: ['code', 'message'],
                  properties: {
                    code: {
                      type: 'string',
                      enum: [
                        'PETREL_ERR_API_UNAUTHORIZED',
                        'PETREL_ERR_API_NOT_FOUND',
                        'PETREL_ERR_API_METHOD_NOT_ALLOWED',
                        'PETREL_ERR_API_BAD_REQUEST',
                        'PETREL_ERR_API_DATABASE_UNAVAILABLE',
                        'PETREL_ERR_API_NO_WORKERS',
                        'PETREL_ERR_API_OPERATION_FAILED',
                        'PETREL_ERR_API_INTERNAL',
                      ],
                    },
                    message: { type: 'string' },
                  },
                },
              },
            },
          },
        },
      },
    },
    schemas: {
      Recipient: {
        type: 'object',
        properties: {
          address: { type: 'string' },
          destinationDomain: { type: 'string' },
          status: {
            type: 'string',
            enum: ['queued', 'deferred', 'delivered', 'bounced', 'expired', 'purged'],
          },
          attempts: { type: 'integer' },
          updatedAt: { type: 'string', format: 'date-time' },
          lastReply: { type: 'string' },
          dsnQueueId: { type: ['string', 'null'], description: 'Queue id of the DSN sent to the sender' },
        },
      },
      Message: {
        type: 'object',
        properties: {
          queueId: { type: 'string' },
          acceptedAt: { type: 'string', format: 'date-time' },
          messageId: { type: 'string', description: 'Message-ID header field, without brackets' },
          sender: { type: 'string' },
          size: { type: 'integer' },
          clientAddress: { type: 'string' },
          traceId: { type: 'string', description: 'OpenTelemetry trace id' },
          recipients: { type: 'array', items: { $ref: '#/components/schemas/Recipient' } },
        },
      },
      TimelineEntry: {
        type: 'object',
        properties: {
          at: { type: 'string', format: 'date-time' },
          event: {
            type: 'string',
            enum: ['accepted', 'delivered', 'deferred', 'bounced', 'expired', 'suppressed', 'purged'],
          },
          eventId: { type: 'string' },
          destinationDomain: { type: 'string' },
          recipients: { type: 'array', items: { type: 'string' } },
          attempt: { type: 'integer' },
          remoteHost: { type: 'string' },
          remoteAddress: { type: 'string' },
          tlsProtocol: { type: 'string' },
          reply: {
            type: ['object', 'null'],
            properties: { code: { type: 'integer' }, enhanced: { type: 'string' }, text: { type: 'string' } },
          },
          error: { type: 'string' },
          durationMs: { type: 'integer' },
          dsnQueueId: { type: ['string', 'null'] },
        },
      },
      Destination: {
        type: 'object',
        properties: {
          domain: { type: 'string' },
          ready: { type: 'integer', description: 'Recipients queued, not yet tried' },
          deferred: { type: 'integer', description: 'Recipients waiting for a retry' },
          oldestAgeSeconds: { type: ['integer', 'null'] },
          ratePerSecond: { type: ['number', 'null'], description: 'Allowed now (lowered after throttling)' },
          configuredRatePerSecond: { type: ['number', 'null'] },
          suspended: { type: 'boolean' },
          suspendedUntil: { type: ['string', 'null'], format: 'date-time' },
        },
      },
      OperationResult: {
        type: 'object',
        properties: { domain: { type: 'string' }, operation: { type: 'string' }, count: { type: 'integer' } },
      },
      Suppression: {
        type: 'object',
        properties: {
          address: { type: 'string' },
          reason: { type: 'string' },
          status: { type: 'string', description: 'RFC 3463 status of the bounce' },
          source: { type: 'string', enum: ['bounce', 'manual'] },
          createdAt: { type: 'string', format: 'date-time' },
          expiresAt: { type: 'string', format: 'date-time' },
        },
      },
      WebhookDelivery: {
        type: 'object',
        properties: {
          deliveryId: { type: 'string' },
          at: { type: 'string', format: 'date-time' },
          subscription: { type: 'string' },
          domain: { type: 'string' },
          event: { type: 'string' },
          eventId: { type: 'string' },
          queueId: { type: 'string' },
          url: { type: 'string' },
          attempt: { type: 'integer' },
          statusCode: { type: ['integer', 'null'] },
          error: { type: 'string' },
          deliveredAt: { type: ['string', 'null'], format: 'date-time' },
          durationMs: { type: 'integer' },
          idempotencyKey: { type: 'string' },
        },
      },
      RecorderStats: {
        type: ['object', 'null'],
        properties: {
          written: { type: 'integer' },
          duplicates: { type: 'integer' },
          expired: { type: 'integer' },
          undecodable: { type: 'integer' },
          ignored: { type: 'integer' },
          refused: { type: 'integer' },
          lagMessages: { type: 'integer' },
          lagSeconds: { type: 'number' },
          failing: { type: 'boolean' },
        },
      },
    },
  },
} as const;
