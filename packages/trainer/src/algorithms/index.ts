export { ignoredOptions } from './applies.js';
export { accuracyOf, meanCrossEntropy } from './common.js';
export { createAlgorithm, parseAlgorithmId, resolveAlgorithmOptions } from './registry.js';
export {
  ALGORITHM_IDS,
  type Algorithm,
  type AlgorithmId,
  type AlgorithmOptions,
  DEFAULT_ALGORITHM_OPTIONS,
  type ForwardGradientOptions,
  type LossPlacementOptions,
  type StepBatch,
  type StepResult,
} from './types.js';
