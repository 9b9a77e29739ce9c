import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    // Names Node's backends for tests that import deep modules instead of the package entry.
    setupFiles: ['tests/helpers/setup-backends.ts'],
    // Two cores on CI: threads keep start-up cheap; each file is independent.
    pool: 'threads',
    testTimeout: 60_000,
  },
});
