/**
 * The files of a running `petrel dev` in its data dir that the API commands read: where its API
 * listens (JSON: url, tokenFile, pid; there only while it runs) and the API's token; dev.ts
 * writes them. Kept apart from dev.ts so that `petrel trace` does not load everything
 * `petrel dev` needs (that tripled its start-up time).
 */
export const LOCAL_API_FILE = 'api.json';
export const API_TOKEN_FILE = 'api-token';
