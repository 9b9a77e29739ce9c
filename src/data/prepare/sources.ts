/**
 * Where documents come from: files, directories (searched recursively), globs, and JSONL files.
 *
 * - `.txt`, `.md`: one document per file.
 * - `.html`, `.htm`: one document per file, marked as HTML (the pipeline converts it to text).
 * - `.jsonl`: one document per non-blank line, the text in a string field (`text` by default).
 *   A line that is not JSON, or not an object with that string field, stops the run with an error
 *   naming file and line: silently skipping it would hide a wrong `--text-field` or a broken export.
 *
 * Order is deterministic: inputs in the order given, the files of a directory or glob sorted by
 * path (code-point order, not locale). A file named twice is read once. Documents are produced one
 * at a time and JSONL is read line by line, so memory does not grow with the input.
 */
import { createReadStream, existsSync, readdirSync, statSync } from 'node:fs';
import { extname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { readTextFile } from '../files.js';

/** The file extensions read, and what each holds. */
export const SOURCE_EXTENSIONS: Readonly<Record<string, 'text' | 'html' | 'jsonl'>> = Object.freeze({
  '.txt': 'text',
  '.md': 'text',
  '.html': 'html',
  '.htm': 'html',
  '.jsonl': 'jsonl',
});

export interface SourceDocument {
  /** The document's text as stored (HTML for HTML sources). */
  text: string;
  /** Where it came from: the path, or path:line for a JSONL line. */
  source: string;
  /** Whether `text` is HTML to convert. */
  html: boolean;
}

export interface SourceOptions {
  /** JSONL field holding the text; default 'text'. */
  textField?: string;
  /** Treat the text of JSONL documents as HTML; default false. */
  jsonlHtml?: boolean;
}

const GLOB_CHARACTERS = /[*?[\]{}!]/;

function byCodePoint(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function kindOf(path: string): 'text' | 'html' | 'jsonl' | undefined {
  return SOURCE_EXTENSIONS[extname(path).toLowerCase()];
}

function listDirectory(dir: string): string[] {
  const files: string[] = [];
  const walk = (current: string): void => {
    for (const entry of readdirSync(current, { withFileTypes: true })) {
      // Hidden files and folders (.git, editor swap files, atomic-write temporaries) are not documents.
      if (entry.name.startsWith('.')) continue;
      const path = join(current, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.isFile() && kindOf(path) !== undefined) files.push(path);
    }
  };
  walk(dir);
  return files.sort(byCodePoint);
}

const extensionList = Object.keys(SOURCE_EXTENSIONS).join(', ');

/**
 * The files the inputs name, in reading order. Errors (one line, naming the input): a path that
 * does not exist and is not a glob, a glob or directory without readable files, a file of another
 * type.
 */
export async function expandInputs(inputs: readonly string[]): Promise<string[]> {
  if (inputs.length === 0) throw new Error('no inputs: give files, directories or globs');
  const seen = new Set<string>();
  const files: string[] = [];
  const add = (path: string): void => {
    const key = resolve(path);
    if (seen.has(key)) return;
    seen.add(key);
    files.push(path);
  };
  for (const input of inputs) {
    if (existsSync(input)) {
      const stats = statSync(input);
      if (stats.isDirectory()) {
        const found = listDirectory(input);
        if (found.length === 0) throw new Error(`input directory ${input} has no ${extensionList} files`);
        found.forEach(add);
      } else {
        if (kindOf(input) === undefined) throw new Error(`input ${input}: unsupported file type '${extname(input) || '(none)'}' (expected ${extensionList})`);
        add(input);
      }
    } else if (GLOB_CHARACTERS.test(input)) {
      const { glob } = await import('tinyglobby');
      const found = (await glob(input, { onlyFiles: true, dot: false, expandDirectories: false })).filter((p) => kindOf(p) !== undefined).sort(byCodePoint);
      if (found.length === 0) throw new Error(`input glob '${input}' matched no ${extensionList} files`);
      found.forEach(add);
    } else {
      throw new Error(`input ${input} does not exist (expected a file, a directory or a glob)`);
    }
  }
  return files;
}

/** The documents of one JSONL file, read line by line. */
async function* readJsonl(path: string, textField: string, html: boolean): AsyncGenerator<SourceDocument> {
  const stream = createReadStream(path, { encoding: 'utf8' });
  const lines = createInterface({ input: stream, crlfDelay: Infinity });
  let lineNumber = 0;
  try {
    for await (const line of lines) {
      lineNumber++;
      if (line.trim().length === 0) continue;
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch {
        throw new Error(`${path}:${lineNumber}: not valid JSON (expected one JSON object per line)`);
      }
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
        throw new Error(`${path}:${lineNumber}: expected a JSON object with a string field '${textField}'`);
      }
      const text = (parsed as Record<string, unknown>)[textField];
      if (typeof text !== 'string') {
        throw new Error(`${path}:${lineNumber}: expected a string field '${textField}'${text === undefined ? ' (missing; see --text-field)' : `, got ${text === null ? 'null' : typeof text}`}`);
      }
      yield { text, source: `${path}:${lineNumber}`, html };
    }
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (code === 'ENOENT' || code === 'EACCES' || code === 'EISDIR') throw new Error(`cannot read input ${path}: ${String(code)}`);
    throw error;
  } finally {
    lines.close();
    stream.destroy();
  }
}

/** The documents of one file. */
export async function* readFileDocuments(path: string, options: SourceOptions = {}): AsyncGenerator<SourceDocument> {
  const kind = kindOf(path);
  if (kind === 'jsonl') yield* readJsonl(path, options.textField ?? 'text', options.jsonlHtml ?? false);
  else if (kind === 'text' || kind === 'html') yield { text: readTextFile(path, 'input'), source: path, html: kind === 'html' };
  else throw new Error(`input ${path}: unsupported file type '${extname(path)}' (expected ${extensionList})`);
}

/** Every document of the inputs, one at a time, in the order of expandInputs. */
export async function* readDocuments(files: readonly string[], options: SourceOptions = {}): AsyncGenerator<SourceDocument> {
  for (const file of files) yield* readFileDocuments(file, options);
}
