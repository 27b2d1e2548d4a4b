export {
  type ActivityEstimate,
  type ActivityEstimateOptions,
  type ActivityNoiseOptions,
  type ActivityPass,
  type ActivityPerturbationOptions,
  activityPerturbedEstimate,
  activityPerturbedGradient,
  perExampleRoute,
  type SiteEstimate,
  type SitesForward,
  type TangentRoute,
} from './activity.js';
export { type ForwardGradientOptions, forwardGradient } from './forward-gradient.js';
export {
  type ActivityWeightGradientInput,
  activityWeightGradient,
  expandGroupTangent,
  type GroupedWeightEstimateInput,
  weightPerturbationGroupedEstimate,
} from './layer.js';
export { type NoiseKind, noiseFourthMoment, noiseKinds, sampleNoise } from './noise.js';
export { replicaGroupTangents, replicaRoute, replicaUnitTangent } from './replicas.js';
export {
  type ActivateArgs,
  type Activation,
  type ActivityRecord,
  type ActivityRecorder,
  type ActivityRecorderOptions,
  createActivityRecorder,
  type NoiseSource,
  plainSites,
  type SiteOptions,
  type Sites,
} from './sites.js';
export {
  type ForwardGradientResult,
  independentWeightPerturbedGradient,
  type Reduction,
  type WeightPerturbationOptions,
  type WeightPerturbationResult,
  weightPerturbedGradient,
} from './weight.js';
export {
  allocateLabEstimates,
  allocateLabNoise,
  createLabProblem,
  drawLabNoise,
  type LabEstimates,
  type LabEstimator,
  labEstimates,
  labEstimators,
  type LabPointOptions,
  type LabProblem,
  type LabProblemOptions,
  type LabSampleNoise,
  type LabSweep,
  type LabTheoryInput,
  labTheory,
  measureLabPoint,
  runVarianceLab,
  type VarianceLabOptions,
  type VarianceRow,
  varianceJsonLines,
} from './lab.js';
export {
  type ForwardVariableGradsOptions,
  forwardVariableGrads,
  type VariableGradsResult,
} from './variable-grads.js';
