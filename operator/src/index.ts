export { compileDirectory, writeRuntimeConfig } from './local/compile.ts';
