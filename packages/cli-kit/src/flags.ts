import { InvalidArgumentError } from 'commander';

/** A commander value parser for `flag` that accepts what `ok` accepts, else names the flag. */
function numberFlag(flag: string, ok: (n: number) => boolean, expected: string) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !ok(n))
      throw new InvalidArgumentError(`${flag} expects ${expected}, got '${value}'`);
    return n;
  };
}

/** Parses a positive integer value of `flag` (e.g. `--epochs`). */
export function positiveInt(flag: string): (value: string) => number {
  return numberFlag(flag, (n) => Number.isSafeInteger(n) && n >= 1, 'a positive integer');
}

/** Parses a whole number ≥ 0 of `flag` (e.g. `--retries`). */
export function nonNegativeInt(flag: string): (value: string) => number {
  return numberFlag(flag, (n) => Number.isSafeInteger(n) && n >= 0, 'a whole number ≥ 0');
}

/** Parses an integer value of `flag` (e.g. `--seed`); beyond ±2^53 integers are not exact. */
export function integer(flag: string): (value: string) => number {
  return numberFlag(flag, Number.isSafeInteger, 'an integer between -2^53 and 2^53');
}

/** Parses a finite positive number of `flag` (e.g. `--lr`). */
export function positiveNumber(flag: string): (value: string) => number {
  return numberFlag(flag, (n) => Number.isFinite(n) && n > 0, 'a positive number');
}

/** Parses a finite number ≥ 0 of `flag` (e.g. `--momentum`). */
export function nonNegativeNumber(flag: string): (value: string) => number {
  return numberFlag(flag, (n) => Number.isFinite(n) && n >= 0, 'a number ≥ 0');
}

/** Splits a comma-separated value, dropping empty items. */
export function commaList(value: string): string[] {
  return value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}
