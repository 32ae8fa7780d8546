export const ConfigErrorCode = {
  InvalidManifest: 'PETREL_ERR_INVALID_MANIFEST',
  MissingSecret: 'PETREL_ERR_MISSING_SECRET',
  DuplicateDomain: 'PETREL_ERR_DUPLICATE_DOMAIN',
  InvalidRuntimeConfig: 'PETREL_ERR_INVALID_RUNTIME_CONFIG',
  RuntimeConfigUnreadable: 'PETREL_ERR_RUNTIME_CONFIG_UNREADABLE',
  ConfigDirUnreadable: 'PETREL_ERR_CONFIG_DIR_UNREADABLE',
} as const;
export type ConfigErrorCode = (typeof ConfigErrorCode)[keyof typeof ConfigErrorCode];

export class ConfigError extends Error {
  readonly code: ConfigErrorCode;
  constructor(code: ConfigErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'ConfigError';
    this.code = code;
  }
}
