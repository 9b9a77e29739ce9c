/**
 * A throwaway PostgreSQL server for the storage tests: initdb into a temp directory and pg_ctl
 * start on a free loopback port, with the unix socket inside that directory. PostgreSQL refuses
 * to run as root, so as root the server runs as the `postgres` system user (Debian's package
 * creates it). Only the absence of the server binaries is a reason to skip.
 */
import { execFile } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The newest /usr/lib/postgresql/<version>/bin with initdb and pg_ctl, or null. */
export function findPgBin(): string | null {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return null;
  const versions = readdirSync(root)
    .filter((v) => existsSync(join(root, v, 'bin', 'initdb')) && existsSync(join(root, v, 'bin', 'pg_ctl')))
    .sort((a, b) => Number(b) - Number(a));
  return versions.length ? join(root, versions[0], 'bin') : null;
}

export const PG_BIN = findPgBin();
export const NO_PG_REASON = 'skipped: no PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb); install Debian\'s postgresql package (.ci/run does)';

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface PgServer {
  url: string;
  stop(): Promise<void>;
}

async function idOf(user: string): Promise<{ uid: number; gid: number }> {
  const uid = Number((await run('id', ['-u', user])).stdout.trim());
  const gid = Number((await run('id', ['-g', user])).stdout.trim());
  return { uid, gid };
}

export async function startPgServer(): Promise<PgServer> {
  if (!PG_BIN) throw new Error(NO_PG_REASON);
  const bin = PG_BIN;
  const dir = mkdtempSync(join(tmpdir(), 'tensorlm-pg-'));
  const asRoot = process.getuid?.() === 0;
  if (asRoot) {
    const { uid, gid } = await idOf('postgres');
    chownSync(dir, uid, gid);
  }
  const pg = (tool: string, args: string[]) => (asRoot ? run('runuser', ['-u', 'postgres', '--', join(bin, tool), ...args]) : run(join(bin, tool), args));
  const data = join(dir, 'data');
  const log = join(dir, 'server.log');
  await pg('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--no-instructions']).catch(async () =>
    // --no-instructions is PostgreSQL ≥ 14.
    pg('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8']),
  );
  // The port can be taken between freePort and start; a few tries make that harmless.
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=50`;
    try {
      await pg('pg_ctl', ['-D', data, '-l', log, '-w', '-t', '60', '-o', options, 'start']);
    } catch (error) {
      if (attempt < 3) continue;
      const serverLog = existsSync(log) ? readFileSync(log, 'utf8').slice(-2000) : '';
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`could not start PostgreSQL: ${(error as Error).message}\n${serverLog}`);
    }
    return {
      url: `postgresql://postgres@127.0.0.1:${port}/postgres`,
      stop: async () => {
        await pg('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']).catch(() => undefined);
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
}
