import { describe, expect, it } from 'vitest';
import {
  experimentSchedule,
  PRESET_NAMES,
  PRESETS,
  peakLr,
  resolveExperiment,
  validateExperiment,
} from './presets.js';

// Paper appendix 11 and REFERENCE §4, one row per preset:
// [dataset, model, objective, epochs, batch, optimizer, lr, wd, schedule, warmup, augmentation]
const TABLE = {
  'mnist-s11': ['mnist', 'S/1/1', 'supervised', 1000, 128, 'sgd', 0.01, 0, 'linear', 0, { kind: 'none' }],
  'mnist-m116': ['mnist', 'M/1/16', 'supervised', 1000, 128, 'sgd', 0.01, 0, 'linear', 0, { kind: 'none' }],
  'cifar10-m816': [
    'cifar10',
    'M/8/16',
    'supervised',
    200,
    128,
    'sgd',
    0.01,
    0,
    'linear',
    0,
    { kind: 'none' },
  ],
  'cifar10-l864': [
    'cifar10',
    'L/8/64',
    'supervised',
    200,
    128,
    'sgd',
    0.01,
    0,
    'linear',
    0,
    { kind: 'none' },
  ],
  'imagenet-l3264': [
    'imagenet',
    'L/32/64',
    'supervised',
    120,
    256,
    'sgd',
    0.05,
    1e-4,
    'warmup-cosine',
    10,
    { kind: 'byol', areaLowerBound: 0.3 },
  ],
  'cifar10-m816-contrastive': [
    'cifar10',
    'M/8/16',
    'contrastive',
    1000,
    512,
    'sgd',
    1.0,
    0,
    'warmup-cosine',
    10,
    { kind: 'byol', areaLowerBound: 0.5 },
  ],
  'cifar10-l864-contrastive': [
    'cifar10',
    'L/8/64',
    'contrastive',
    1000,
    2048,
    'sgd',
    4.0,
    0,
    'warmup-cosine',
    10,
    { kind: 'byol', areaLowerBound: 0.3 },
  ],
} as const;

describe('experiment presets (issue 8 item 5, paper appendix 11)', () => {
  it('hold the paper’s hyper-parameters', () => {
    expect(Object.keys(TABLE).sort()).toEqual([...PRESET_NAMES].sort());
    for (const name of PRESET_NAMES) {
      const [
        dataset,
        model,
        objective,
        epochs,
        batchSize,
        optimizer,
        lr,
        weightDecay,
        schedule,
        warmupEpochs,
        aug,
      ] = TABLE[name];
      expect(resolveExperiment(name)).toEqual({
        preset: name,
        dataset,
        model,
        objective,
        epochs,
        batchSize,
        optimizer,
        lr,
        momentum: 0.9,
        weightDecay,
        headLr: 1.0,
        lastLayerLr: name === 'imagenet-l3264' ? 0.1 : 1.0,
        schedule,
        warmupEpochs,
        augmentation: aug,
        lrScaling: 'none',
      });
      expect(() => validateExperiment(PRESETS[name])).not.toThrow();
    }
  });

  it('an unknown preset lists the presets', () => {
    expect(() => resolveExperiment('cifar100-m816')).toThrow(
      "Unknown experiment preset 'cifar100-m816'; the presets are: mnist-s11, mnist-m116, cifar10-m816, " +
        'cifar10-l864, imagenet-l3264, cifar10-m816-contrastive, cifar10-l864-contrastive.',
    );
  });

  it('any field can be overridden; undefined overrides are ignored; presets stay unchanged', () => {
    const c = resolveExperiment('cifar10-m816', {
      epochs: 2,
      batchSize: 64,
      optimizer: 'lars',
      lr: 0.2,
      momentum: 0.5,
      weightDecay: 1e-5,
      headLr: 0.5,
      lastLayerLr: 0.2,
      schedule: 'staircase',
      lrScaling: 'linear',
      model: 'S/1/1',
      dataset: 'mnist',
      objective: 'contrastive',
      warmupEpochs: 1,
      augmentation: { kind: 'pad-crop-flip', pad: 2 },
    });
    expect(c).toMatchObject({ epochs: 2, batchSize: 64, optimizer: 'lars', lr: 0.2, momentum: 0.5 });
    expect(c).toMatchObject({ weightDecay: 1e-5, headLr: 0.5, lastLayerLr: 0.2, schedule: 'staircase' });
    expect(c).toMatchObject({
      lrScaling: 'linear',
      model: 'S/1/1',
      dataset: 'mnist',
      objective: 'contrastive',
    });
    expect(c.augmentation).toEqual({ kind: 'pad-crop-flip', pad: 2 });
    expect(resolveExperiment('mnist-s11', { epochs: undefined, lr: undefined }).epochs).toBe(1000);
    expect(PRESETS['cifar10-m816'].epochs).toBe(200);
    expect(Object.isFrozen(PRESETS['imagenet-l3264'].augmentation)).toBe(true);
    const im = resolveExperiment('imagenet-l3264');
    im.augmentation.areaLowerBound = 0.9;
    im.lr = 9;
    expect(PRESETS['imagenet-l3264'].augmentation.areaLowerBound).toBe(0.3);
    expect(resolveExperiment('imagenet-l3264')).toMatchObject({
      lr: 0.05,
      augmentation: { areaLowerBound: 0.3 },
    });
  });

  it('merges augmentation overrides; a new kind drops the old area bound', () => {
    expect(
      resolveExperiment('imagenet-l3264', { augmentation: { areaLowerBound: 0.08 } }).augmentation,
    ).toEqual({
      kind: 'byol',
      areaLowerBound: 0.08,
    });
    expect(resolveExperiment('imagenet-l3264', { augmentation: { kind: 'none' } }).augmentation).toEqual({
      kind: 'none',
    });
    expect(() => resolveExperiment('mnist-s11', { augmentation: { kind: 'byol' } })).toThrow(
      /augmentation.kind is byol but augmentation.areaLowerBound is missing/,
    );
    expect(() =>
      resolveExperiment('mnist-s11', { augmentation: { kind: 'byol', areaLowerBound: 1.5 } }),
    ).toThrow(/areaLowerBound = 1.5 is invalid; use a number in \(0, 1\]/);
    expect(() => resolveExperiment('mnist-s11', { augmentation: { area: 0.3 } as never })).toThrow(
      "Unknown augmentation field 'area'; the fields are: kind, areaLowerBound, pad.",
    );
  });

  it('rejects unknown fields and bad values, naming them', () => {
    expect(() => resolveExperiment('mnist-s11', { learningRate: 0.1 } as never)).toThrow(
      /Unknown experiment field 'learningRate'; the fields are: dataset, model, objective, epochs, batchSize/,
    );
    expect(() => resolveExperiment('mnist-s11', { epochs: 0 })).toThrow(
      /epochs = 0 is invalid; use a whole number ≥ 1/,
    );
    expect(() => resolveExperiment('mnist-s11', { batchSize: 1.5 })).toThrow(/batchSize = 1.5/);
    expect(() => resolveExperiment('mnist-s11', { lr: -0.1 })).toThrow(/lr = -0.1/);
    expect(() => resolveExperiment('mnist-s11', { momentum: 1 })).toThrow(
      /momentum = 1 is invalid; use a number in \[0, 1\)/,
    );
    expect(() => resolveExperiment('mnist-s11', { model: 'XL/1/1' as never })).toThrow(
      /model 'XL\/1\/1' is unknown; use one of S\/1\/1, M\/1\/16/,
    );
    expect(() => resolveExperiment('mnist-s11', { schedule: 'cosine' as never })).toThrow(
      /schedule 'cosine'/,
    );
    expect(() => resolveExperiment('cifar10-m816-contrastive', { epochs: 20, warmupEpochs: 20 })).toThrow(
      /warmupEpochs = 20 is not shorter than epochs = 20/,
    );
  });

  it('short runs keep the warm-up’s fraction of the run when the preset’s warm-up does not fit', () => {
    expect(resolveExperiment('cifar10-m816-contrastive', { epochs: 5 }).warmupEpochs).toBeCloseTo(0.05, 12);
    expect(resolveExperiment('imagenet-l3264', { epochs: 6 }).warmupEpochs).toBeCloseTo(0.5, 12);
    expect(resolveExperiment('cifar10-m816-contrastive', { epochs: 20 }).warmupEpochs).toBe(10);
    expect(resolveExperiment('cifar10-m816-contrastive', { epochs: 5, warmupEpochs: 1 }).warmupEpochs).toBe(
      1,
    );
  });

  it('peakLr and experimentSchedule', () => {
    const c = resolveExperiment('cifar10-m816-contrastive');
    expect(peakLr(c)).toBe(1.0);
    // lr 0.5 with linear scaling is the paper's 1.0 at batch 512 and 4.0 at batch 2048
    expect(peakLr({ ...c, lr: 0.5, lrScaling: 'linear' })).toBe(1.0);
    expect(peakLr({ ...c, lr: 0.5, lrScaling: 'linear', batchSize: 2048 })).toBe(4.0);
    const lr = experimentSchedule(resolveExperiment('imagenet-l3264'), 10); // 1200 steps, 100 warm-up
    expect(lr(0)).toBe(0);
    expect(lr(50)).toBeCloseTo(0.025, 12);
    expect(lr(100)).toBeCloseTo(0.05, 12);
    expect(lr(650)).toBeCloseTo(0.025, 12);
    expect(lr(1200)).toBeCloseTo(0, 12);
    const short = experimentSchedule(resolveExperiment('cifar10-m816-contrastive', { epochs: 1 }), 3);
    // warm-up 0.01 epochs = 0.03 of 3 steps: lr 0 at step 0, then cosine over the 2.97 steps left
    expect(short(0)).toBe(0);
    expect(short(1)).toBeCloseTo(0.5 * (1 + Math.cos((Math.PI * 0.97) / 2.97)), 12);
    expect(() => experimentSchedule(c, 0)).toThrow(/stepsPerEpoch = 0/);
  });
});
