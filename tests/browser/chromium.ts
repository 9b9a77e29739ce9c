/**
 * Browser tests drive Debian's Chromium through playwright-core (nothing is downloaded): the
 * executable comes from CHROMIUM_PATH or the usual Debian locations. Where none is installed the
 * browser tests are skipped with `chromiumSkipReason` printed.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];

export function chromiumPath(): string | null {
  const fromEnv = process.env.CHROMIUM_PATH;
  if (fromEnv) return existsSync(fromEnv) ? fromEnv : null;
  return CANDIDATES.find((p) => existsSync(p)) ?? null;
}

export const chromiumSkipReason: string | null = chromiumPath()
  ? null
  : 'no Chromium found (apt-get install -y chromium, or set CHROMIUM_PATH); browser tests skipped';

if (chromiumSkipReason) console.warn(chromiumSkipReason);

export async function launchChromium(): Promise<Browser> {
  const executablePath = chromiumPath();
  if (!executablePath) throw new Error(chromiumSkipReason ?? 'no Chromium');
  // --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
  return chromium.launch({ executablePath, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
}

/** Where browser tests write screenshots (test artifacts; not committed). */
export function artifactPath(name: string): string {
  const dir = join(process.cwd(), 'test-artifacts');
  mkdirSync(dir, { recursive: true });
  return join(dir, name);
}
