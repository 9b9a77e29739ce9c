import { expect } from 'vitest';

/** Asserts `fn` throws one line (no newline) matching `pattern`. */
export function expectOneLineError(fn: () => unknown, pattern: RegExp): void {
  let message: string | null = null;
  try {
    fn();
  } catch (e) {
    message = (e as Error).message;
  }
  expect(message, `expected an error matching ${pattern}`).not.toBeNull();
  expect(message).toMatch(pattern);
  expect(message).not.toContain('\n');
}

/**
 * The error `fn` throws, asserted to be one short line naming `file`, with no raw TypeError text
 * from deep inside (what a reader of a damaged file must give).
 */
export function fileErrorOf(fn: () => unknown, file: string): string {
  let message = '';
  try {
    fn();
  } catch (error) {
    message = (error as Error).message;
  }
  expect(message, 'no error was thrown').not.toBe('');
  expect(message).toContain(file);
  expect(message).not.toContain('\n');
  expect(message.length).toBeLessThanOrEqual(300 + file.length);
  expect(message).not.toMatch(/Cannot read properties|is not a function|Invalid typed array length|undefined is not/);
  return message;
}
