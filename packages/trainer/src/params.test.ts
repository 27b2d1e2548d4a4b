import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { assignParams, namedParams, type ParamEntry, validateParams } from './params.js';

let serial = 0;
const entry = (name: string, values: number[], over: Partial<ParamEntry> = {}): ParamEntry => ({
  name,
  variable: tf.variable(tf.tensor1d(values), true, `params-test-${serial++}`),
  kind: 'weight',
  group: 'backbone',
  ...over,
});

describe('ParamEntry helpers', () => {
  it('validates names, kinds and groups', () => {
    const a = entry('a', [1]);
    const b = entry('a', [2]);
    expect(() => validateParams([a])).not.toThrow();
    expect(() => validateParams([a, b])).toThrow(/'a' is used twice \(entry #1\)/);
    expect(() => validateParams([{ ...a, group: 'trunk' as never }])).toThrow(
      /group 'trunk'; use one of backbone/,
    );
    expect(() => validateParams([{ ...a, kind: 'gain' as never }])).toThrow(
      /kind 'gain'; use one of weight, bias/,
    );
    expect(() => validateParams([{ ...a, variable: tf.zeros([1]) as never }])).toThrow(
      /holds no tf.Variable/,
    );
    a.variable.dispose();
    b.variable.dispose();
  });

  it('namedParams / assignParams round trip, all-or-nothing on mismatch', () => {
    const es = [entry('w', [1, 2]), entry('b', [3], { kind: 'bias' })];
    const named = namedParams(es);
    expect(named.w).toBe(es[0].variable);
    const saved = { w: tf.tensor1d([5, 6]), b: tf.tensor1d([7]) };
    assignParams(es, saved);
    expect(Array.from(es[0].variable.dataSync())).toEqual([5, 6]);
    expect(Array.from(es[1].variable.dataSync())).toEqual([7]);
    const wrong = { w: tf.tensor1d([0, 0]), b: tf.tensor1d([0, 0]) };
    expect(() => assignParams(es, wrong)).toThrow(/'b' has shape \[2\] but the model's has \[1\]/);
    expect(Array.from(es[0].variable.dataSync())).toEqual([5, 6]);
    expect(() => assignParams(es, { w: saved.w })).toThrow(/lack 1 of the model's parameters \(b\)/);
    expect(() => assignParams(es, { ...saved, extra: saved.b })).toThrow(
      /1 name\(s\) the model does not have \(extra\)/,
    );
    for (const t of [...Object.values(saved), ...Object.values(wrong), ...es.map((e) => e.variable)])
      t.dispose();
  });
});
