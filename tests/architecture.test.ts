/**
 * The layering of src/ (docs/architecture.md): no file imports a higher layer, and above backends/
 * only entry points import backend implementations. The rule is read from the document itself
 * (its ```layers and ```backend-entry-points blocks), so the two cannot drift apart.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(repo, 'src');
const doc = readFileSync(join(repo, 'docs/architecture.md'), 'utf8');

function block(name: string): string[][] {
  const m = doc.match(new RegExp('```' + name + '\\n([\\s\\S]*?)```'));
  if (!m) throw new Error(`docs/architecture.md has no \`\`\`${name} block`);
  return m[1]
    .split('\n')
    .map((line) => line.trim().split(/\s+/).filter(Boolean))
    .filter((entries) => entries.length > 0);
}

const layers = block('layers');
const entryPoints = new Set(block('backend-entry-points').flat());

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return /\.ts$/.test(name) && !name.endsWith('.d.ts') ? [relative(src, path)] : [];
  });
}

/** The layer of a file: its most specific entry (the file itself, else the longest folder prefix). */
function layerOf(file: string): { layer: number; entry: string } | null {
  let best: { layer: number; entry: string } | null = null;
  layers.forEach((entries, layer) => {
    for (const entry of entries) {
      const matches = entry.endsWith('/') ? file.startsWith(entry) : file === entry;
      if (matches && (best === null || entry.length > best.entry.length)) best = { layer, entry };
    }
  });
  return best;
}

/** Relative imports of a file: static, re-exports, side-effect imports and literal dynamic imports. */
function importsOf(file: string): string[] {
  const text = readFileSync(join(src, file), 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const specs = [...text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^;]*?from\s*['"](\.[^'"]+)['"]|(?:^|\n)\s*import\s*['"](\.[^'"]+)['"]|import\(\s*['"](\.[^'"]+)['"]\s*\)/g)].map((m) => m[1] ?? m[2] ?? m[3]);
  return specs.map((spec) => relative(src, resolve(dirname(join(src, file)), spec)).replace(/\.js$/, '.ts'));
}

const files = sourceFiles(src);

describe('architecture (docs/architecture.md)', () => {
  it('places every source file in a layer', () => {
    expect(files.filter((f) => layerOf(f) === null)).toEqual([]);
  });

  it('has no file importing a higher layer', () => {
    const breaches: string[] = [];
    for (const file of files) {
      const from = layerOf(file);
      for (const target of importsOf(file)) {
        const to = layerOf(target);
        if (from && to && to.layer > from.layer) breaches.push(`${file} (${from.entry}) imports ${target} (${to.entry}, a higher layer)`);
      }
    }
    expect(breaches).toEqual([]);
  });

  it('above backends/, imports only the kernel interface, except in entry points', () => {
    const backendsLayer = layers.findIndex((entries) => entries.includes('backends/'));
    const breaches: string[] = [];
    for (const file of files) {
      if (file.startsWith('backends/') || (layerOf(file)?.layer ?? 0) <= backendsLayer || entryPoints.has(file)) continue;
      for (const target of importsOf(file)) {
        if (target.startsWith('backends/') && target !== 'backends/registry.ts' && target !== 'backends/kernels.ts') breaches.push(`${file} imports ${target}`);
      }
    }
    expect(breaches).toEqual([]);
  });

  it('the checker sees imports (it can fail)', () => {
    expect(importsOf('train/trainer.ts')).toContain('train/loop.ts');
    expect(importsOf('index.ts')).toContain('backends/node.ts');
    expect(layerOf('tensor/shape.ts')?.entry).toBe('tensor/shape.ts');
    expect(layerOf('tensor/tensor.ts')?.entry).toBe('tensor/');
    expect((layerOf('models/transformer.ts')?.layer ?? 0) > (layerOf('nn/module.ts')?.layer ?? 0)).toBe(true);
  });
});
