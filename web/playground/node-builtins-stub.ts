/**
 * What `node:fs`, `node:path`, `node:os` and `node:crypto` resolve to in the playground bundle
 * (vite.config.ts `resolve.alias`). TensorLM's browser entry (src/browser.ts) never calls them:
 * they are imported by the Node-only file functions that share modules with browser-safe code
 * (`TransformerLM.loadSafetensors(path)`, `CharTokenizer.load(path)`, …). Calling one throws a
 * clear error instead of failing somewhere inside a bundler shim.
 */
function unavailable(name: string): (...args: unknown[]) => never {
  return () => {
    throw new Error(`${name} is not available in the browser: TensorLM's file functions are Node-only (use the bytes-based ones in src/browser.ts, e.g. parseSafetensors)`);
  };
}

// node:fs
export const closeSync = unavailable('fs.closeSync');
export const existsSync = unavailable('fs.existsSync');
export const fstatSync = unavailable('fs.fstatSync');
export const fsyncSync = unavailable('fs.fsyncSync');
export const mkdirSync = unavailable('fs.mkdirSync');
export const openSync = unavailable('fs.openSync');
export const readdirSync = unavailable('fs.readdirSync');
export const readFileSync = unavailable('fs.readFileSync');
export const readSync = unavailable('fs.readSync');
export const renameSync = unavailable('fs.renameSync');
export const statSync = unavailable('fs.statSync');
export const unlinkSync = unavailable('fs.unlinkSync');
export const writeFileSync = unavailable('fs.writeFileSync');
export const writeSync = unavailable('fs.writeSync');
// node:path
export const basename = unavailable('path.basename');
export const dirname = unavailable('path.dirname');
export const join = unavailable('path.join');
export const relative = unavailable('path.relative');
export const resolve = unavailable('path.resolve');
// node:os
export const endianness = unavailable('os.endianness');
export const homedir = unavailable('os.homedir');
export const tmpdir = unavailable('os.tmpdir');
// node:crypto
export const createHash = unavailable('crypto.createHash');
export const randomBytes = unavailable('crypto.randomBytes');

export default {};
