/** The shared numeric flag parsers: each names its flag, and an empty value is not read as 0. */
import { InvalidArgumentError } from 'commander';
import { describe, expect, it } from 'vitest';
import { fraction, nonNegativeInt, nonNegativeNumber, positiveInt, positiveNumber } from '../../src/cli/args.js';

describe('numeric flag parsers', () => {
  it('accept valid values and return numbers', () => {
    expect(positiveInt('--steps')('12')).toBe(12);
    expect(nonNegativeInt('--seed')('0')).toBe(0);
    expect(positiveNumber('--lr')('3e-4')).toBe(3e-4);
    expect(nonNegativeNumber('--wd')('0')).toBe(0);
    expect(fraction('--dropout')('0.1')).toBe(0.1);
  });
  it('reject bad values with the flag and the value named', () => {
    expect(() => positiveInt('--steps')('0')).toThrow(new InvalidArgumentError("--steps must be a positive integer, got '0'"));
    expect(() => positiveInt('--steps')('1.5')).toThrow(/--steps must be a positive integer, got '1.5'/);
    expect(() => nonNegativeInt('--seed')('-1')).toThrow(/--seed must be a non-negative integer/);
    expect(() => positiveNumber('--lr')('Infinity')).toThrow(/--lr must be a positive number, got 'Infinity'/);
    expect(() => nonNegativeNumber('--wd')('abc')).toThrow(/--wd must be a non-negative number/);
    expect(() => fraction('--dropout')('1')).toThrow(/--dropout must be in \[0, 1\), got '1'/);
  });
  it('reject an empty value instead of reading it as 0', () => {
    for (const parse of [nonNegativeInt('--seed'), nonNegativeNumber('--wd'), fraction('--dropout')]) expect(() => parse('')).toThrow(/got ''/);
    expect(() => nonNegativeInt('--seed')('  ')).toThrow(/--seed/);
  });
});
