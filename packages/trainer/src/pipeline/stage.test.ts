import * as tf from '@tensorflow/tfjs';
import { resolveConfig } from '@fwdgrad/localmixer';
import { createRandom, hashSeed } from '@fwdgrad/random';
import { describe, expect, it } from 'vitest';
import { createAlgorithm } from '../algorithms/registry.js';
import { createModel } from '../model.js';
import { createOptimizer } from '../optim.js';
import {
  blockCosts,
  PIPELINE_ALGORITHMS,
  type PipelineAlgorithmId,
  pipelineAlgorithm,
  planStages,
} from './plan.js';
import { type ForwardMessage, stageSpecs, toWire } from './protocol.js';
import { PipelineStage } from './stage.js';

// 3 blocks, 8×8 images in 2×2 patches: small enough to step in milliseconds.
const config = resolveConfig({
  imageShape: [8, 8, 1],
  patchesPerSide: 2,
  channels: 8,
  hidden: 12,
  groups: 2,
  blocks: 3,
});
const seed = 5;
const optimizer = { kind: 'sgd' as const, momentum: 0.9, weightDecay: 0, headLr: 1, lastLayerLr: 1 };
const lr = 0.05;
const steps = 3;

function batchAt(step: number): ForwardMessage {
  const x = tf.randomNormal([6, 4, 16], 0, 1, 'float32', 100 + step);
  const labels = tf.tidy(() =>
    tf
      .oneHot(
        tf.tensor1d(
          [0, 1, 2, 3, 4, 5].map((i) => (i + step) % 10),
          'int32',
        ),
        10,
      )
      .toFloat(),
  );
  const message: ForwardMessage = {
    kind: 'forward',
    step,
    epoch: 1,
    lr,
    x: toWire(x),
    labels: toWire(labels),
    size: 6,
  };
  tf.dispose([x, labels]);
  return message;
}

/** The sequential rule's parameters after `steps` steps, as the trainer's loop runs it. */
function sequential(algorithm: PipelineAlgorithmId): Map<string, Float32Array> {
  const model = createModel(config, seed);
  const rule = createAlgorithm(algorithm, model, {}, createRandom(hashSeed(seed, 1)));
  const opt = createOptimizer('sgd', optimizer);
  const trainable = new Set(rule.trainable(model));
  const entries = model.entries.filter((e) => trainable.has(e.name));
  for (let t = 0; t < steps; t++) {
    const m = batchAt(t);
    const x = tf.tensor(m.x.values, m.x.shape);
    const labels = tf.tensor(m.labels.values, m.labels.shape);
    const r = rule.step(model, { x, labels, size: m.size }, createRandom(hashSeed(seed, 2, t)));
    opt.apply(entries, r.grads, lr);
    tf.dispose([...r.grads.values(), x, labels]);
  }
  const out = new Map(model.entries.map((e) => [e.name, e.variable.dataSync().slice() as Float32Array]));
  rule.dispose();
  opt.dispose();
  model.dispose();
  return out;
}

/** The same steps through chained stages in this thread (what the worker threads run). */
function pipelined(algorithm: PipelineAlgorithmId, stages: number): Map<string, Float32Array> {
  const chain = stageSpecs(planStages(config, stages), {
    config,
    algorithm,
    algorithmOptions: {},
    optimizer,
    seed,
  }).map((spec) => new PipelineStage(spec));
  for (let t = 0; t < steps; t++) {
    let m: ForwardMessage | null = batchAt(t);
    for (const s of chain) {
      if (m === null) throw new Error('a stage before the last sent nothing forward');
      m = s.step(m).forward;
    }
    expect(m).toBeNull();
  }
  const out = new Map<string, Float32Array>();
  for (const s of chain) {
    for (const [name, w] of Object.entries(s.collect().params)) out.set(name, w.values);
    s.dispose();
  }
  return out;
}

function maxDiff(a: Map<string, Float32Array>, b: Map<string, Float32Array>, names: string[]): number {
  let d = 0;
  for (const n of names) {
    const x = a.get(n) as Float32Array;
    const y = b.get(n) as Float32Array;
    expect(x.length).toBe(y.length);
    for (let i = 0; i < x.length; i++) d = Math.max(d, Math.abs(x[i] - y[i]));
  }
  return d;
}

describe('planStages', () => {
  it('cuts M/8/16 where the costliest stage is cheapest (block 0 has no token mixing)', () => {
    const m816 = resolveConfig('M/8/16');
    const costs = blockCosts(m816);
    expect(costs[0]).toBeLessThan(costs[1]);
    expect(costs[1]).toBe(costs[3]);
    expect(planStages(m816, 1)).toEqual([{ first: 0, count: 4 }]);
    expect(planStages(m816, 2)).toEqual([
      { first: 0, count: 2 },
      { first: 2, count: 2 },
    ]);
    expect(planStages(m816, 4).map((r) => r.count)).toEqual([1, 1, 1, 1]);
    expect(planStages(m816, 3, [1, 1, 1, 5])).toEqual([
      { first: 0, count: 2 },
      { first: 2, count: 1 },
      { first: 3, count: 1 },
    ]);
  });

  it('names the problem and the fix', () => {
    expect(() => planStages(config, 4)).toThrow(/has 3 blocks, so choose 1 … 3 stages/);
    expect(() => pipelineAlgorithm('bp')).toThrow(/'bp' is not one\. Choose one of l-bp, lg-bp/);
    expect(PIPELINE_ALGORITHMS).toContain('lg-fg-a');
  });
});

describe('PipelineStage (the stage logic, without threads)', () => {
  it.each(['lg-fg-a', 'lg-fa', 'l-bp'] as const)(
    'one stage is the sequential %s rule, number for number',
    (algo) => {
      const a = sequential(algo);
      const b = pipelined(algo, 1);
      expect(maxDiff(a, b, [...a.keys()])).toBe(0);
    },
  );

  it('LG-BP over 3 stages is the sequential LG-BP (a stage sees what the sequential rule shows its blocks)', () => {
    const a = sequential('lg-bp');
    const b = pipelined('lg-bp', 3);
    expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
    expect(maxDiff(a, b, [...a.keys()])).toBeLessThan(1e-6);
    // and the parameters did move
    const init = createModel(config, seed);
    const moved = maxDiff(
      a,
      new Map(init.entries.map((e) => [e.name, e.variable.dataSync() as Float32Array])),
      [...a.keys()],
    );
    init.dispose();
    expect(moved).toBeGreaterThan(1e-3);
  });

  it('LG-FG-A over 2 stages: stage 0 is the sequential rule; the later stage draws its own noise', () => {
    const a = sequential('lg-fg-a');
    const b = pipelined('lg-fg-a', 2);
    const [, second] = planStages(config, 2);
    const stage0 = [...a.keys()].filter((n) => /^(backbone\.[01]\.|head\.0\.)/.test(n));
    const later = [...a.keys()].filter((n) => n.startsWith('backbone.') && !stage0.includes(n));
    expect(second.first).toBe(1);
    expect(maxDiff(a, b, stage0)).toBe(0);
    expect(maxDiff(a, b, later)).toBeGreaterThan(0);
  });

  it('leaks no tensors across steps', () => {
    const stage = new PipelineStage({
      stage: 0,
      stages: 2,
      range: { first: 0, count: 2 },
      config,
      algorithm: 'lg-fg-a',
      algorithmOptions: {},
      optimizer,
      seed,
    });
    stage.step(batchAt(0));
    const before = tf.memory().numTensors;
    for (let t = 1; t < 4; t++) stage.step(batchAt(t));
    expect(tf.memory().numTensors).toBe(before);
    stage.dispose();
  });
});
