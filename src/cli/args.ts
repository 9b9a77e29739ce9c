/**
 * Parsers of numeric command-line flags shared by every command: each names its flag and the
 * value it got. An empty string is rejected too (Number('') is 0, which would slip through).
 */
import { InvalidArgumentError } from 'commander';

function numeric(flag: string, what: string, ok: (n: number) => boolean) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !ok(n)) throw new InvalidArgumentError(`${flag} must be ${what}, got '${value}'`);
    return n;
  };
}

export const positiveInt = (flag: string) => numeric(flag, 'a positive integer', (n) => Number.isInteger(n) && n >= 1);
export const nonNegativeInt = (flag: string) => numeric(flag, 'a non-negative integer', (n) => Number.isInteger(n) && n >= 0);
export const positiveNumber = (flag: string) => numeric(flag, 'a positive number', (n) => n > 0 && Number.isFinite(n));
export const nonNegativeNumber = (flag: string) => numeric(flag, 'a non-negative number', (n) => n >= 0 && Number.isFinite(n));
export const fraction = (flag: string) => numeric(flag, 'in [0, 1)', (n) => n >= 0 && n < 1);
