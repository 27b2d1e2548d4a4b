import type { Suite, SuiteName } from '../types.js';
import { ablationsSuite } from './ablations.js';
import { backendsSuite } from './backends.js';
import { contrastiveSuite } from './contrastive.js';
import { fusedSuite } from './fused.js';
import { jvpOverheadSuite } from './jvp-overhead.js';
import { pipelineSuite } from './pipeline.js';
import { table3Suite } from './table3.js';
import { tfjsLayersSuite } from './tfjs-layers.js';
import { throughputSuite } from './throughput.js';
import { varianceSuite } from './variance.js';

/** Every suite by name (issue 9). */
export const SUITES: Readonly<Record<SuiteName, Suite>> = {
  variance: varianceSuite,
  fused: fusedSuite,
  'jvp-overhead': jvpOverheadSuite,
  throughput: throughputSuite,
  'table3-mnist': table3Suite,
  ablations: ablationsSuite,
  contrastive: contrastiveSuite,
  pipeline: pipelineSuite,
  'tfjs-layers': tfjsLayersSuite,
  backends: backendsSuite,
};

export {
  ablationsSuite,
  backendsSuite,
  contrastiveSuite,
  fusedSuite,
  jvpOverheadSuite,
  pipelineSuite,
  table3Suite,
  tfjsLayersSuite,
  throughputSuite,
  varianceSuite,
};
