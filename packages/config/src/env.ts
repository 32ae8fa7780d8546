import type { z } from 'zod';

/**
 * Reads a service's settings from environment variables into a schema: `names` maps each
 * setting to its variable. Every violation is listed with the variable's name; the result is frozen.
 */
export function settingsFromEnv<S extends z.ZodObject>(
  service: string,
  schema: S,
  names: Record<keyof z.infer<S> & string, string>,
  env: NodeJS.ProcessEnv,
): Readonly<z.infer<S>> {
  const raw = Object.fromEntries(Object.entries(names).map(([key, name]) => [key, env[name] || undefined]));
  const result = schema.safeParse(raw);
  if (!result.success) {
    const lines = result.error.issues.map((i) => {
      const key = String(i.path[0] ?? '');
      return `${(names as Record<string, string>)[key] ?? i.path.join('.')}: ${i.message}`;
    });
    throw new Error(`invalid ${service} configuration:\n${lines.join('\n')}`);
  }
  return Object.freeze(result.data);
}
