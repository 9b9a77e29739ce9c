import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    // Two cores on CI: threads keep start-up cheap; each file is independent.
    pool: 'threads',
    testTimeout: 60_000,
  },
});
