/**
 * Builds the playground into dist-web/playground/ as ONE self-contained index.html: the page's
 * script and CSS are inlined into it, and the training worker is inlined into the script
 * (`?worker&inline`, a classic IIFE worker started from a Blob URL). So the page works when served
 * under any path (the dashboard serves it at /playground/) and when opened as a file:// URL, where
 * Chromium refuses both module scripts loaded from files and workers loaded from files.
 *
 *   npx vite build -c web/playground/vite.config.ts        (part of `npm run build:web`)
 */
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig, type Plugin } from 'vite';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '../..');

/** Node built-ins that Node-only functions of browser-safe modules import (see node-builtins-stub.ts). */
const nodeBuiltins = /^node:(fs|path|os|crypto)$/;

/** Inlines the entry script and the CSS into index.html and drops them from the output. */
function inlineIntoHtml(): Plugin {
  return {
    name: 'tensorlm-playground-inline',
    apply: 'build',
    enforce: 'post',
    generateBundle(_options, bundle) {
      const html = Object.values(bundle).find((f) => f.type === 'asset' && f.fileName.endsWith('.html'));
      if (!html || html.type !== 'asset') return;
      let source = String(html.source);
      for (const [name, file] of Object.entries(bundle)) {
        if (file.type === 'chunk' && file.isEntry) {
          const tag = new RegExp(`<script[^>]*src="[^"]*${escapeRegExp(file.fileName)}"[^>]*></script>`);
          if (!tag.test(source)) this.error(`playground: no <script> tag for ${file.fileName} in index.html`);
          // `</script` inside the code would end the element early; `<\/script` means the same in JS.
          const code = file.code.replace(/<\/script/gi, '<\\/script');
          source = source.replace(tag, () => `<script type="module">\n${code}</script>`);
          delete bundle[name];
        } else if (file.type === 'asset' && file.fileName.endsWith('.css')) {
          const tag = new RegExp(`<link[^>]*href="[^"]*${escapeRegExp(file.fileName)}"[^>]*>`);
          source = source.replace(tag, () => `<style>\n${String(file.source)}</style>`);
          delete bundle[name];
        } else if (file.type === 'chunk') {
          this.error(`playground: unexpected extra chunk ${file.fileName}; the page must be a single file`);
        }
      }
      html.source = source;
    },
  };
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export default defineConfig({
  root: here,
  base: './',
  resolve: { alias: [{ find: nodeBuiltins, replacement: resolve(here, 'node-builtins-stub.ts') }] },
  worker: { format: 'iife' },
  build: {
    outDir: resolve(repo, 'dist-web/playground'),
    emptyOutDir: true,
    target: 'es2022',
    modulePreload: false,
    cssCodeSplit: false,
    reportCompressedSize: false,
    // One HTML file with the worker and its WebAssembly kernels inside (~1 MB).
    chunkSizeWarningLimit: 4096,
  },
  plugins: [inlineIntoHtml()],
});
