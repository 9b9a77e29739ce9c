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
