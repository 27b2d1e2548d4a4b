/**
 * Blocks trained in parallel (`@fwdgrad/trainer/pipeline`): the local rules' blocks split into
 * stages on worker threads, activations streamed forward per micro-batch, nothing sent backward.
 */
export { type Pipeline, type PipelineOptions, PipelineStageError, startPipeline } from './pipeline.js';
export {
  blockCosts,
  PIPELINE_ALGORITHMS,
  type PipelineAlgorithmId,
  pipelineAlgorithm,
  planStages,
  type StageRange,
} from './plan.js';
export {
  type ControlMessage,
  type ForwardMessage,
  fromWire,
  type StageMessage,
  type StageSpec,
  type StepReport,
  stageSpecs,
  toWire,
  transfers,
  type WireTensor,
} from './protocol.js';
export { PipelineStage, stageSeed } from './stage.js';
export { type PipelineSummary, type PipelineTrainOptions, trainPipelined } from './train.js';
