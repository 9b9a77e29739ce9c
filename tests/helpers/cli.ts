/** Node's arguments that run the CLI from sources (CLI_ARGS), and runCli: runs the `tensorlm` CLI from sources (tsx), as the CLI tests do: exit code and both streams, never a throw. */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const CLI_ARGS = ['--import', 'tsx', join(import.meta.dirname, '../../src/cli/main.ts')];

export interface CliResult {
  stdout: string;
  stderr: string;
  code: number;
}

export async function runCli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  try {
    const { stdout, stderr } = await run(process.execPath, [...CLI_ARGS, ...args], { env: { ...process.env, ...env }, maxBuffer: 1 << 24 });
    return { stdout, stderr, code: 0 };
  } catch (e) {
    const err = e as { stdout: string; stderr: string; code: number };
    return { stdout: err.stdout, stderr: err.stderr, code: err.code };
  }
}
