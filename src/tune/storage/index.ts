/** Opens a study storage from what the user typed: a SQLite file path or a PostgreSQL URL. */
import { PostgresStorage } from './postgres.js';
import { SqliteStorage } from './sqlite.js';
import type { TuneStorage } from './common.js';

export * from './common.js';
export { SqliteStorage } from './sqlite.js';
export { PostgresStorage, redactUrl } from './postgres.js';

/** `postgres://…` / `postgresql://…` → PostgreSQL; `sqlite:path` or a plain path → a SQLite file. */
export function openStorage(spec: string): TuneStorage {
  const trimmed = spec.trim();
  if (trimmed === '') throw new Error('--storage: expected a SQLite file path or a postgresql:// URL, got an empty string');
  if (/^postgres(ql)?:\/\//i.test(trimmed)) return new PostgresStorage(trimmed);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(trimmed)) {
    throw new Error(`--storage: unsupported URL scheme in '${trimmed.split('://')[0]}://…' (expected a SQLite file path, sqlite:<path>, or postgresql://user@host:port/db)`);
  }
  return new SqliteStorage(trimmed.startsWith('sqlite:') ? trimmed.slice('sqlite:'.length) : trimmed);
}
