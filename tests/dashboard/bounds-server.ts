/**
 * A dashboard server in a process of its own, for tests/dashboard/bounds.test.ts to measure its
 * memory. argv[2]: JSON { runs, limits?, server? } (server: the module exporting startDashboard,
 * default src/dashboard/server.ts). Prints `URL <url>`, then answers each IPC message 'memory'
 * with { rss, peakRss, heapUsed, external, arrayBuffers } in bytes (peakRss: /proc VmHWM).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

interface Args {
  runs: string;
  limits?: Record<string, number>;
  server?: string;
}

const args = JSON.parse(process.argv[2]) as Args;
const modulePath = args.server ?? join(import.meta.dirname, '../../src/dashboard/server.ts');
const { startDashboard } = (await import(pathToFileURL(modulePath).href)) as typeof import('../../src/dashboard/server.js');
const dashboard = await startDashboard({ runs: args.runs, port: 0, assetsDir: join(args.runs, 'no-assets'), ...(args.limits ? { limits: args.limits } : {}) });

function peakRss(): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

process.on('message', (message) => {
  if (message === 'memory') {
    const m = process.memoryUsage();
    process.send?.({ rss: m.rss, peakRss: peakRss(), heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers });
  } else if (message === 'close') {
    void dashboard.close().then(() => process.exit(0));
  }
});
process.on('disconnect', () => void dashboard.close().then(() => process.exit(0)));
console.log(`URL ${dashboard.url}`);
