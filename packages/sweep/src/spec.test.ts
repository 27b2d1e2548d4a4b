import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadSpec } from './folder.js';
import { expandGrid, flagArgs, validateSpec } from './spec.js';

describe('sweep specs', () => {
  it('expands arrays into a grid, first axis slowest, scalars fixed', () => {
    const jobs = expandGrid({ seed: [0, 1], algo: ['bp', 'lg-fg-a'], model: 'M/1/16', epochs: 20 });
    expect(jobs.map((j) => j.name)).toEqual([
      'seed=0,algo=bp',
      'seed=0,algo=lg-fg-a',
      'seed=1,algo=bp',
      'seed=1,algo=lg-fg-a',
    ]);
    expect(jobs[1].values).toEqual({ seed: 0, algo: 'lg-fg-a', model: 'M/1/16', epochs: 20 });
    expect(jobs[1].axes).toEqual({ seed: 0, algo: 'lg-fg-a' });
    expect(jobs[1].args).toEqual(['--seed', '0', '--algo', 'lg-fg-a', '--model', 'M/1/16', '--epochs', '20']);
  });

  it('names folders safely and refuses two points with one folder', () => {
    expect(expandGrid({ model: ['S/1/1', 'M/1/16'] }).map((j) => j.name)).toEqual([
      'model=S_1_1',
      'model=M_1_16',
    ]);
    expect(expandGrid({ algo: 'bp' }).map((j) => j.name)).toEqual(['run']);
    expect(() => expandGrid({ model: ['M/1/16', 'M_1_16'] })).toThrow(/same run folder 'model=M_1_16'/);
  });

  it('turns booleans into switches', () => {
    expect(flagArgs({ 'relu-mask': false, 'norm-grad': true, 'no-progress': false })).toEqual([
      '--no-relu-mask',
      '--norm-grad',
      '--progress',
    ]);
  });

  it('rejects what is not a spec, naming the key and the fix', () => {
    expect(() => validateSpec([1, 2])).toThrow(/must be an object of train flags/);
    expect(() => validateSpec({ '--algo': 'bp' })).toThrow(/without the dashes \('algo'\)/);
    expect(() => validateSpec({ 'run-dir': 'x' })).toThrow(/set by the sweep runner/);
    expect(() => validateSpec({ seed: [] })).toThrow(/'seed' is an empty list/);
    expect(() => validateSpec({ lr: { a: 1 } })).toThrow(/'lr' must be a string, number or boolean/);
  });

  it('reads JSON and YAML files', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fwdgrad-spec-'));
    writeFileSync(join(dir, 'a.json'), JSON.stringify({ algo: ['bp', 'fa'], lr: 0.01 }));
    writeFileSync(join(dir, 'a.yaml'), 'algo: [bp, fa]\nlr: 0.01\n');
    writeFileSync(join(dir, 'bad.json'), '{"algo": ');
    expect(loadSpec(join(dir, 'a.yaml'))).toEqual(loadSpec(join(dir, 'a.json')));
    expect(() => loadSpec(join(dir, 'bad.json'))).toThrow(/bad.json is not valid JSON/);
    expect(() => loadSpec(join(dir, 'missing.yaml'))).toThrow(/cannot read sweep spec/);
  });
});
