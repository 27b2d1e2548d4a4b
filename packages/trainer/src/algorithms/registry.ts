import { createRandom, type Random } from '@fwdgrad/random';
import type { Model } from '../model.js';
import { createDirectFeedbackAlignment } from './dfa.js';
import { createGradientRule, isGradientRule } from './exact.js';
import { createForwardRule, isForwardRule } from './forward-gradient.js';
import {
  ALGORITHM_IDS,
  type Algorithm,
  type AlgorithmId,
  type AlgorithmOptions,
  DEFAULT_ALGORITHM_OPTIONS,
} from './types.js';

/** Checks an algorithm id, with the list of valid ones in the error. */
export function parseAlgorithmId(id: string): AlgorithmId {
  if (!(ALGORITHM_IDS as readonly string[]).includes(id)) {
    throw new Error(`unknown algorithm '${id}'; choose one of ${ALGORITHM_IDS.join(', ')}`);
  }
  return id as AlgorithmId;
}

/** Fills in defaults for the algorithm options (nested `losses` included). */
export function resolveAlgorithmOptions(options: Partial<AlgorithmOptions> = {}): AlgorithmOptions {
  return {
    ...DEFAULT_ALGORITHM_OPTIONS,
    ...options,
    losses: { ...DEFAULT_ALGORITHM_OPTIONS.losses, ...(options.losses ?? {}) },
  };
}

/**
 * Creates a learning rule for `model` by its paper name (lower case, e.g. `lg-fg-a`).
 * `random` draws the rule's fixed state (feedback matrices), after the model's parameters.
 */
export function createAlgorithm(
  id: string,
  model: Model,
  options: Partial<AlgorithmOptions> = {},
  random: Random = createRandom(0),
): Algorithm {
  const algo = parseAlgorithmId(id);
  const opts = resolveAlgorithmOptions(options);
  if (algo === 'dfa') return createDirectFeedbackAlignment(model, opts, random);
  if (isGradientRule(algo)) return createGradientRule(algo, model, opts, random);
  if (isForwardRule(algo)) return createForwardRule(algo, opts);
  throw new Error(`algorithm '${algo}' has no implementation`);
}
