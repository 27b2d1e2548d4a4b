import {
  configSizes,
  type LocalMixerConfig,
  linearSites,
  paramShapes,
  siteActivationShape,
} from '@fwdgrad/localmixer';
import type { AlgorithmId } from '../algorithms/types.js';

/**
 * The rules whose blocks can train on different workers at once: each block learns from its own
 * local loss, so no message has to travel backward (paper §1: "local losses … blocks can be
 * trained in parallel"). Between stages the pipeline cuts the gradient, so L-BP and L-FA (whose
 * errors otherwise cross the blocks) become greedy at the stage boundaries.
 */
export const PIPELINE_ALGORITHMS = ['l-bp', 'lg-bp', 'l-fa', 'lg-fa', 'lg-fg-w', 'lg-fg-a'] as const;
export type PipelineAlgorithmId = (typeof PIPELINE_ALGORITHMS)[number];

/** Checks that a rule can be pipelined; the error lists the ones that can. */
export function pipelineAlgorithm(id: AlgorithmId | string): PipelineAlgorithmId {
  if (!(PIPELINE_ALGORITHMS as readonly string[]).includes(id)) {
    throw new Error(
      `--parallel-blocks needs a rule with local losses and nothing sent backward between blocks; '${id}' is not ` +
        `one. Choose one of ${PIPELINE_ALGORITHMS.join(', ')}, or drop --parallel-blocks.`,
    );
  }
  return id as PipelineAlgorithmId;
}

/** The blocks of one stage: `first`…`first + count − 1`. */
export interface StageRange {
  first: number;
  count: number;
}

/**
 * Multiply-adds per example of each block: its linear layers (units × fan-in) and its local head
 * (P·C·K for the replicated head on every patch). The plan's cost model: deterministic, so that
 * the same stage count always gives the same stages (and the same numbers).
 */
export function blockCosts(config: LocalMixerConfig): number[] {
  const shapes = paramShapes(config);
  const costs = new Array<number>(config.blocks).fill(0);
  for (const site of linearSites(config)) {
    const units = siteActivationShape(config, site, 1).reduce((a, b) => a * b, 1);
    const w = shapes.backbone[site.index].w;
    costs[site.block] += units * w[w.length - 2];
  }
  const head = shapes.heads[0].w;
  const perHead = configSizes(config).numPatches * head[0] * head[1];
  return costs.map((c) => c + perHead);
}

/**
 * Cuts the blocks into `stages` contiguous stages so that the costliest stage is as cheap as
 * possible (a pipeline runs at the pace of its slowest stage); among equally good cuts, the one
 * whose earlier stages are smallest. Throws when there are more stages than blocks.
 */
export function planStages(
  config: LocalMixerConfig,
  stages: number,
  costs: readonly number[] = blockCosts(config),
): StageRange[] {
  const blocks = config.blocks;
  if (!Number.isInteger(stages) || stages < 1 || stages > blocks) {
    throw new Error(
      `--parallel-blocks ${stages}: the model has ${blocks} block${blocks === 1 ? '' : 's'}, so choose 1 … ${blocks} ` +
        'stages (one block per stage at most).',
    );
  }
  if (costs.length !== blocks) throw new Error(`planStages: ${costs.length} costs for ${blocks} blocks`);
  const prefix = [0];
  for (const c of costs) prefix.push(prefix[prefix.length - 1] + c);
  const span = (a: number, b: number) => prefix[b] - prefix[a];
  // best[s][b]: the least maximum stage cost of the first b blocks in s stages; cut[s][b] its last cut
  const best = Array.from({ length: stages + 1 }, () =>
    new Array<number>(blocks + 1).fill(Number.POSITIVE_INFINITY),
  );
  const cut = Array.from({ length: stages + 1 }, () => new Array<number>(blocks + 1).fill(0));
  best[0][0] = 0;
  for (let s = 1; s <= stages; s++) {
    for (let b = s; b <= blocks; b++) {
      // the last stage takes blocks a…b−1; prefer the largest a (earlier stages smaller) on ties
      for (let a = b - 1; a >= s - 1; a--) {
        const v = Math.max(best[s - 1][a], span(a, b));
        if (v < best[s][b]) {
          best[s][b] = v;
          cut[s][b] = a;
        }
      }
    }
  }
  const out: StageRange[] = [];
  let b = blocks;
  for (let s = stages; s >= 1; s--) {
    const a = cut[s][b];
    out.unshift({ first: a, count: b - a });
    b = a;
  }
  return out;
}
