export {
  type CustomJvpArgs,
  customJvp,
  type JvpOptions,
  jvp,
  jvpActive,
  jvpBatched,
  jvpBatchSize,
  type KernelCall,
  type LazyTangent,
  LINEAR_KERNELS,
  type Perturbation,
  type PerturbHook,
  stopGradient,
  suspended,
  tangentOf,
  type VariableJvpOptions,
  variableJvp,
  withTangent,
} from './engine.js';
export { FUSED_GROUPED_MATMUL, type GroupedMatMulMode, groupedMatMul, tapeRecording } from './grouped.js';
export { SCALE_IN_PLACE } from './kernel-names.js';
export {
  FUSED_LAYER_NORM,
  FUSED_LAYER_NORM_JVP,
  type Linearizable,
  type Linearization,
  l2Normalize,
  layerNorm,
  layerNormFunction,
  layerNormLinearized,
  ops,
  softmaxCrossEntropy,
} from './ops.js';
export { type JvpRule, type JvpRuleContext, registerJvpRule, supportedKernels } from './rules/index.js';
