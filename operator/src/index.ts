export { configContent } from './config/publisher.ts';
export { reuseConnections } from './kube-connections.ts';
export { compileDirectory, writeRuntimeConfig } from './local/compile.ts';
