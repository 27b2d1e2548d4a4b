/**
 * @fwdgrad/baselines-fa — feedback alignment (FA, DFA) for any TensorFlow.js network.
 *
 * Layer-level pieces that know linear layers and fixed feedback matrices, nothing about a particular
 * model: swap a network's linear op for `feedbackLinear` (FA) or tag its layer outputs with a
 * `createDirectFeedback` hub (DFA), then use tf.grads / tf.variableGrads as usual.
 */
export { alignmentAngle, alignmentAngles } from './alignment.js';
export {
  createDirectFeedback,
  type DirectFeedback,
  type DirectFeedbackOptions,
  detach,
  directFeedback,
  type OutputErrorRef,
  type RandomReadoutOptions,
  randomReadoutLoss,
} from './dfa.js';
export { type InitFeedbackOptions, initDirectFeedback, initFeedback } from './init.js';
export { feedbackLinear } from './linear.js';
