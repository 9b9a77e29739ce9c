/**
 * The dashboard's own web assets (the vite builds in dist-web/), resolved from the raw request
 * URL with a whitelist of what a segment may look like, so no spelling of a path (.., %2e%2e,
 * %2F, double encoding, backslashes, absolute paths) can name a file outside the asset folders;
 * and the resolved real path must stay inside them, so a symlink cannot either. No directory is
 * ever listed.
 *
 *   /                → dist-web/dashboard/index.html     /assets/x.js → dist-web/dashboard/assets/x.js
 *   /playground/     → dist-web/playground/index.html    /playground/assets/y.js → dist-web/playground/assets/y.js
 */
import { realpathSync, statSync } from 'node:fs';
import { extname, join, sep } from 'node:path';

export type StaticResolution =
  | { kind: 'file'; path: string; size: number; contentType: string; immutable: boolean }
  | { kind: 'redirect'; location: string }
  | { kind: 'error'; status: 400 | 403 | 404 | 503; message: string };

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.ico': 'image/x-icon',
  '.wasm': 'application/wasm',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
};

function contentTypeOf(path: string): string {
  return CONTENT_TYPES[extname(path).toLowerCase()] ?? 'application/octet-stream';
}

const BUILD_HINT = 'run `npm run build:web` to build it';

/**
 * A decoded path segment that names an ordinary file or folder: no separators of any platform, no
 * NUL, no '%' left after decoding (double encoding), no ':' (drive letters, streams), and no
 * leading dot ('.', '..' and dotfiles).
 */
function isPlainSegment(segment: string): boolean {
  return segment !== '' && !segment.startsWith('.') && !/[/\\\0%:]/.test(segment) && segment.length <= 255;
}

/** Resolves `rawUrl` (the request target exactly as received) against `assetsDir`. */
export function resolveStatic(assetsDir: string, rawUrl: string): StaticResolution {
  const cut = rawUrl.search(/[?#]/);
  const path = cut === -1 ? rawUrl : rawUrl.slice(0, cut);
  if (!path.startsWith('/')) return { kind: 'error', status: 400, message: `request target must be a path starting with '/', got '${truncate(path)}'` };
  const segments: string[] = [];
  const raw = path.slice(1).split('/');
  for (let i = 0; i < raw.length; i++) {
    let segment: string;
    try {
      segment = decodeURIComponent(raw[i]);
    } catch {
      return { kind: 'error', status: 400, message: `malformed percent-encoding in path segment '${truncate(raw[i])}'` };
    }
    // Only the last segment may be empty (a trailing slash asks for the folder's index.html).
    if (segment === '' && i === raw.length - 1) {
      segments.push('');
      continue;
    }
    if (segment === '') return { kind: 'error', status: 400, message: `path refused: empty segment ('//') in '${truncate(path)}'` };
    if (!isPlainSegment(segment)) return { kind: 'error', status: 400, message: `path refused: segment '${truncate(segment)}' is not a plain file name` };
    segments.push(segment);
  }

  let app: 'dashboard' | 'playground' = 'dashboard';
  let rest = segments;
  if (segments[0] === 'playground') {
    if (segments.length === 1) return { kind: 'redirect', location: '/playground/' };
    app = 'playground';
    rest = segments.slice(1);
  }
  if (rest[rest.length - 1] === '') rest = [...rest.slice(0, -1), 'index.html'];

  let base: string;
  try {
    base = realpathSync(join(assetsDir, app));
    if (!statSync(join(base, 'index.html')).isFile()) throw new Error('not a file');
  } catch {
    return { kind: 'error', status: 503, message: `the ${app} web page is not built (${join(assetsDir, app, 'index.html')} is missing): ${BUILD_HINT}` };
  }
  let real: string;
  try {
    real = realpathSync(join(base, ...rest));
  } catch {
    return { kind: 'error', status: 404, message: `not found: ${truncate(path)}` };
  }
  if (!real.startsWith(base + sep)) return { kind: 'error', status: 403, message: `path refused: ${truncate(path)} resolves outside the ${app} assets` };
  const st = statSync(real);
  // Folders are never listed.
  if (!st.isFile()) return { kind: 'error', status: 404, message: `not found: ${truncate(path)}` };
  // Vite's hashed bundles under assets/ never change; everything else is revalidated.
  return { kind: 'file', path: real, size: st.size, contentType: contentTypeOf(real), immutable: rest[0] === 'assets' };
}

function truncate(s: string): string {
  return s.length > 120 ? `${s.slice(0, 117)}...` : s;
}
