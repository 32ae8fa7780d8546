export { type DevOptions, runDev } from './dev.ts';
