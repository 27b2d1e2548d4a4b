import * as tf from '@tensorflow/tfjs';
import { alignmentAngle } from '@fwdgrad/baselines-fa';
import { createRandom } from '@fwdgrad/random';
import { createAlgorithm } from './algorithms/registry.js';
import type { Algorithm, AlgorithmId, StepBatch } from './algorithms/types.js';
import type { Model } from './model.js';

/** The exact rule whose gradient an approximate rule estimates (for alignment angles). */
const EXACT_COUNTERPART: Partial<Record<AlgorithmId, AlgorithmId>> = {
  fa: 'bp',
  dfa: 'bp',
  'fg-w': 'bp',
  'fg-a': 'bp',
  'l-fa': 'l-bp',
  'lg-fa': 'lg-bp',
  'lg-fg-w': 'lg-bp',
  'lg-fg-a': 'lg-bp',
};

/**
 * Angles (degrees) between an approximate rule's update and the exact gradient it stands for,
 * per backbone weight, on one batch (paper §6 item 2 for FA/DFA; forward-gradient estimates
 * likewise). `null` for exact rules.
 */
export function alignmentAngles(
  model: Model,
  algorithm: Algorithm,
  batch: StepBatch,
  seed: number,
): Record<string, number> | null {
  const exactId = EXACT_COUNTERPART[algorithm.id];
  if (exactId === undefined) return null;
  const exact = createAlgorithm(exactId, model);
  const approx = algorithm.step(model, batch, createRandom(seed));
  const truth = exact.step(model, batch, createRandom(seed));
  exact.dispose();
  const out: Record<string, number> = {};
  for (const e of model.entries) {
    if (e.group !== 'backbone' || e.kind !== 'weight') continue;
    const a = approx.grads.get(e.name);
    const t = truth.grads.get(e.name);
    if (a !== undefined && t !== undefined) out[e.name] = alignmentAngle(a, t);
  }
  tf.dispose([...approx.grads.values(), ...truth.grads.values()]);
  return out;
}
