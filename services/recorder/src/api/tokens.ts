/**
 * The API's bearer tokens: from a file (a Kubernetes Secret mounted as a volume; re-read when it
 * changes, so a rotated Secret takes effect without a restart) and/or a fixed value. One token
 * per line; blank lines and lines starting with # are ignored. Compared in constant time.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';

export interface TokenSourceOptions {
  readonly file?: string | undefined;
  readonly token?: string | undefined;
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

export class TokenSource {
  readonly #file: string | undefined;
  readonly #fixed: Buffer[];
  #fromFile: Buffer[] = [];
  #mtime = -1;

  constructor(options: TokenSourceOptions) {
    this.#file = options.file;
    this.#fixed = options.token ? [digest(options.token)] : [];
  }

  /** Whether any token is configured at all (without one, every request is refused). */
  async configured(): Promise<boolean> {
    await this.#reload();
    return this.#fixed.length + this.#fromFile.length > 0;
  }

  async accepts(token: string): Promise<boolean> {
    await this.#reload();
    const d = digest(token);
    let ok = false;
    // Every candidate compared: the time taken does not tell which one matched.
    for (const t of [...this.#fixed, ...this.#fromFile]) ok = timingSafeEqual(d, t) || ok;
    return ok;
  }

  async #reload(): Promise<void> {
    if (this.#file === undefined) return;
    try {
      const s = await stat(this.#file);
      if (s.mtimeMs === this.#mtime) return;
      const text = await readFile(this.#file, 'utf8');
      this.#fromFile = text
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l !== '' && !l.startsWith('#'))
        .map(digest);
      this.#mtime = s.mtimeMs;
    } catch {
      // Missing or unreadable: no tokens from the file (requests are refused, not let through).
      this.#fromFile = [];
      this.#mtime = -1;
    }
  }
}
