/**
 * Run by tests/backends/lazy.test.ts in a FRESH Node process (`node --import tsx` this file
 * <scenario>), because what it checks — what importing TensorLM loads — can only be seen before
 * anything else in the process has imported it. Prints one JSON line of observations.
 *
 * "Is koffi loaded" is answered two independent ways:
 * - the CommonJS module cache (`require.cache`, shared by every `createRequire`): koffi is a
 *   CommonJS package, and every way of loading it (createRequire, or an ESM import of it, which
 *   goes through the same CommonJS loader) leaves its files there;
 * - on Linux, the process's memory maps (/proc/self/maps): its native addon (koffi.node) and the
 *   BLAS library show up there once dlopen'ed, whoever loaded them. Null elsewhere.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

const scenario = process.argv[2] ?? 'default';
const entry = new URL('../../src/index.ts', import.meta.url);

const warnings: string[] = [];
process.on('warning', (w) => warnings.push(`${w.name}: ${w.message}`));

const cache = createRequire(import.meta.url).cache;
const koffiInCache = (): boolean => Object.keys(cache).some((p) => /node_modules[\\/](@koromix[\\/])?koffi/.test(p));
function mapped(pattern: RegExp): boolean | null {
  if (process.platform !== 'linux') return null;
  return pattern.test(readFileSync('/proc/self/maps', 'utf8'));
}
/** process.emitWarning reports on the next tick: wait for it before reading `warnings`. */
const settle = () => new Promise<void>((done) => setImmediate(done));
const snapshot = () => ({ koffi: koffiInCache(), koffiMapped: mapped(/koffi[^/\n]*\.node/), blasMapped: mapped(/lib[a-z_]*blas[^/\n]*\.(so|dylib)/), warnings: [...warnings] });

const T = (await import(pathToFileURL(entry.pathname).href)) as typeof import('../../src/index.js');
await settle();
const afterImport = snapshot();

if (scenario === 'explicit') T.setBackend('wasm'); // before any kernel call, with TENSORLM_BACKEND=js set
if (scenario === 'threads') T.setNumThreads(2); // before BLAS is loaded

const x = T.tensor([1, 2, 3]);
const sum = x.add(1).mul(x); // (x + 1)·x
const noise = T.randn([4, 4]);
const shifted = noise.exp().add(noise);
await settle();
const afterElementwise = { ...snapshot(), backend: T.getBackend(), values: sum.toArray(), finite: shifted.toArray().every(Number.isFinite) };

const backends = T.listBackends();
// 256³ multiply-adds: far above the BLAS backend's small-product cut-off (16³).
const a = T.randn([256, 256]);
const b = T.randn([256, 256]);
const c = a.matmul(b);
b.matmul(a); // a second product: a failed BLAS load must warn once, not per product
// One row times a matrix goes to BLAS's sgemv even where the native backend runs the products.
if (scenario === 'vector') T.randn([1, 256]).matmul(a);
await settle();
const [av, bv, cv] = [a.toArray(), b.toArray(), c.toArray()];
let expected = 0;
for (let k = 0; k < 256; k++) expected += av[3 * 256 + k] * bv[k * 256 + 5];
const afterMatmul = { ...snapshot(), backend: T.getBackend(), threads: T.getNumThreads(), c35: cv[3 * 256 + 5], expected35: expected };

console.log(JSON.stringify({ scenario, afterImport, afterElementwise, backends, afterMatmul }));
