/** Option checks shared by the optimizers and schedulers; messages read `${owner}: invalid ${what} ${value}`. */

/** Throws `${optimizer}: invalid ${what} ${value}` unless value is a finite number ≥ 0. */
export function checkNonNegative(optimizer: string, what: string, value: number): void {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) throw new Error(`${optimizer}: invalid ${what} ${value}`);
}

export function checkFinite(optimizer: string, what: string, value: number): void {
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new Error(`${optimizer}: invalid ${what} ${value}`);
}

/** `{ lr: undefined }` must mean "the default", not overwrite it. */
export function withoutUndefined<T extends object>(options: T): T {
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as T;
}
