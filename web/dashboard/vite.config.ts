/**
 * Builds the dashboard page (web/dashboard) into dist-web/dashboard, which `tensorlm dashboard`
 * serves at '/': `npx vite build -c web/dashboard/vite.config.ts` (all pages: `npm run build:web`).
 */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const here = fileURLToPath(new URL('.', import.meta.url));

export default defineConfig({
  root: here,
  base: '/',
  // `npx vite -c web/dashboard/vite.config.ts` serves the page with hot reload; its API calls go
  // to a running `tensorlm dashboard` (TENSORLM_DASHBOARD_URL, default http://127.0.0.1:6006).
  server: {
    proxy: { '/api': { target: process.env.TENSORLM_DASHBOARD_URL ?? 'http://127.0.0.1:6006' } },
  },
  // No public/ directory: everything the page needs is imported.
  publicDir: false,
  build: {
    outDir: fileURLToPath(new URL('../../dist-web/dashboard', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    // No source maps: dist-web ships in the npm package, and the sources are in web/dashboard.
    sourcemap: false,
    // Chart.js alone is ~200 kB minified; one chunk is fine for a local tool.
    chunkSizeWarningLimit: 600,
  },
});
