import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import {
  abortOnSignals,
  applyConfigFile,
  CommandError,
  commaList,
  integer,
  nonNegativeInt,
  nonNegativeNumber,
  positiveInt,
  positiveNumber,
  runProgram,
  USAGE_ERROR,
  UsageError,
} from './node.js';

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
    expect(nonNegativeInt('--retries')('0')).toBe(0);
    expect(() => nonNegativeInt('--retries')('1.5')).toThrow(/--retries expects a whole number ≥ 0/);
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
    const interrupted = () => {
      throw new CommandError('interrupted by SIGTERM', 143);
    };
    expect(await runProgram(program(interrupted), ['go'], 'demo')).toBe(143);
  });
});

describe('applyConfigFile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cli-kit-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  function parse(settings: unknown, argv: string[]): Record<string, unknown> {
    const file = join(dir, 'c.json');
    writeFileSync(file, typeof settings === 'string' ? settings : JSON.stringify(settings));
    let seen: Record<string, unknown> = {};
    const p = new Command('demo').exitOverride();
    p.command('train')
      .option('--config <file>', 'settings')
      .option('--batch-size <n>', 'batch', positiveInt('--batch-size'))
      .addOption(new Option('--algo <id>', 'rule').choices(['bp', 'fa']).default('bp'))
      .option('--no-relu-mask', 'mask')
      .option('--json', 'json')
      .action((flags, cmd: Command) => {
        applyConfigFile(cmd, flags.config);
        seen = cmd.opts();
      });
    p.parse(['train', '--config', file, ...argv], { from: 'user' });
    return seen;
  }

  it('fills in what the command line did not give, through the flags own parsers', () => {
    expect(parse({ 'batch-size': 64, algo: 'fa', 'relu-mask': false, json: true }, [])).toMatchObject({
      batchSize: 64,
      algo: 'fa',
      reluMask: false,
      json: true,
    });
    expect(parse({ batchSize: '64', 'no-relu-mask': true }, ['--batch-size', '8'])).toMatchObject({
      batchSize: 8,
      reluMask: false,
    });
  });

  it('names the file and the setting when it is wrong', () => {
    expect(() => parse({ 'batch-sise': 64 }, [])).toThrow(/unknown setting 'batch-sise'; .*batch-size/);
    expect(() => parse({ 'batch-size': 0 }, [])).toThrow(
      /'batch-size': --batch-size expects a positive integer/,
    );
    expect(() => parse({ algo: 'sgd' }, [])).toThrow(/'algo' expects one of bp, fa/);
    expect(() => parse({ json: 'yes' }, [])).toThrow(/'json' expects true or false/);
    expect(() => parse('{oops', [])).toThrow(UsageError);
    expect(() => parse([1], [])).toThrow(/expected a JSON object/);
  });
});

describe('abortOnSignals', () => {
  it('aborts once with the signal name as reason, ignores repeats, and restores on dispose', () => {
    const controller = new AbortController();
    const seen: string[] = [];
    const dispose = abortOnSignals(controller, (s) => seen.push(s));
    process.emit('SIGTERM', 'SIGTERM');
    process.emit('SIGINT', 'SIGINT');
    expect(controller.signal.aborted).toBe(true);
    expect(controller.signal.reason).toBe('SIGTERM');
    expect(seen).toEqual(['SIGTERM']);
    dispose();
    expect(process.listenerCount('SIGTERM')).toBe(0);
  });
});
