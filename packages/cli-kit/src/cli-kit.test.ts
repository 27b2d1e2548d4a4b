import { Command, InvalidArgumentError } from 'commander';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  commaList,
  integer,
  nonNegativeNumber,
  positiveInt,
  positiveNumber,
  runProgram,
  USAGE_ERROR,
  UsageError,
} from './index.js';

describe('flag parsers', () => {
  it('accept what they promise and name the flag otherwise', () => {
    expect(positiveInt('--epochs')('3')).toBe(3);
    for (const bad of ['0', '-1', '1.5', 'x', '', '1e30']) {
      expect(() => positiveInt('--epochs')(bad)).toThrow(InvalidArgumentError);
      expect(() => positiveInt('--epochs')(bad)).toThrow(/--epochs expects a positive integer/);
    }
    expect(integer('--seed')('-7')).toBe(-7);
    expect(() => integer('--seed')('1e30')).toThrow(/--seed expects an integer/);
    expect(positiveNumber('--lr')('0.5')).toBe(0.5);
    expect(() => positiveNumber('--lr')('0')).toThrow(/--lr expects a positive number/);
    expect(() => positiveNumber('--lr')('Infinity')).toThrow(/--lr/);
    expect(nonNegativeNumber('--momentum')('0')).toBe(0);
    expect(() => nonNegativeNumber('--momentum')('-0.1')).toThrow(/--momentum expects a number ≥ 0/);
    expect(commaList(' a, ,b ')).toEqual(['a', 'b']);
  });
});

describe('runProgram', () => {
  afterEach(() => vi.restoreAllMocks());

  function program(action: () => void): Command {
    const p = new Command('demo');
    p.configureOutput({ writeErr: () => {}, writeOut: () => {} });
    p.command('go').option('--n <n>', 'count', positiveInt('--n')).action(action);
    return p;
  }

  it('returns 0, 2 for usage errors (bad flag or UsageError), 1 for failures', async () => {
    const err = vi.spyOn(console, 'error').mockImplementation(() => {});
    expect(
      await runProgram(
        program(() => {}),
        ['go', '--n', '2'],
        'demo',
      ),
    ).toBe(0);
    expect(
      await runProgram(
        program(() => {}),
        ['go', '--n', '0'],
        'demo',
      ),
    ).toBe(USAGE_ERROR);
    expect(
      await runProgram(
        program(() => {}),
        ['go', '--what'],
        'demo',
      ),
    ).toBe(USAGE_ERROR);
    const usage = () => {
      throw new UsageError('--limit-train 99 exceeds the 10 examples');
    };
    expect(await runProgram(program(usage), ['go'], 'demo')).toBe(USAGE_ERROR);
    expect(err).toHaveBeenLastCalledWith('demo: --limit-train 99 exceeds the 10 examples');
    const fail = () => {
      throw new Error('disk full');
    };
    expect(await runProgram(program(fail), ['go'], 'demo')).toBe(1);
    expect(err).toHaveBeenLastCalledWith('demo: disk full');
  });
});
