import type * as tf from '@tensorflow/tfjs';
import {
  initParams,
  type LinearParams,
  type LocalMixerConfig,
  type LocalMixerParams,
  linearSites,
} from '@fwdgrad/localmixer';
import type { ParamEntry } from './params.js';

/**
 * A LocalMixer being trained: its configuration, its parameters (tf.Variable) and the same
 * parameters as a flat, named list — the currency of optimisers, checkpoints and algorithms.
 *
 * Names: `backbone.<i>.w|b` (i = REFERENCE 0 layer index), `head.<k>.w|b`, `projection.w|b`,
 * `classifier.w|b`.
 */
export interface Model {
  readonly config: LocalMixerConfig;
  readonly params: LocalMixerParams;
  readonly entries: readonly ParamEntry[];
  /** Entry by name. */
  entry(name: string): ParamEntry;
  /** Frees the parameters. */
  dispose(): void;
}

function pair(
  out: ParamEntry[],
  prefix: string,
  p: LinearParams<tf.Variable>,
  group: ParamEntry['group'],
): void {
  out.push({ name: `${prefix}.w`, variable: p.w, kind: 'weight', group });
  out.push({ name: `${prefix}.b`, variable: p.b, kind: 'bias', group });
}

/** Named entries of LocalMixer parameters, in REFERENCE 0 order. */
export function modelEntries(params: LocalMixerParams): ParamEntry[] {
  const out: ParamEntry[] = [];
  params.backbone.forEach((p, i) => {
    pair(out, `backbone.${i}`, p, 'backbone');
  });
  params.heads.forEach((p, k) => {
    pair(out, `head.${k}`, p, 'head');
  });
  if (params.projection) pair(out, 'projection', params.projection, 'projection');
  pair(out, 'classifier', params.classifier, 'classifier');
  return out;
}

/** Creates a model with freshly initialised parameters (seeded, REFERENCE 0). */
export function createModel(config: LocalMixerConfig, seed: number): Model {
  return wrapModel(config, initParams(config, seed));
}

/** Wraps existing parameters (e.g. restored from a checkpoint) as a {@link Model}. */
export function wrapModel(config: LocalMixerConfig, params: LocalMixerParams): Model {
  const entries = modelEntries(params);
  const byName = new Map(entries.map((e) => [e.name, e]));
  return {
    config,
    params,
    entries,
    entry(name) {
      const e = byName.get(name);
      if (e === undefined) throw new Error(`model has no parameter '${name}'`);
      return e;
    },
    dispose() {
      for (const e of entries) e.variable.dispose();
    },
  };
}

/** Names of the backbone parameters of block `block`. */
export function blockParamNames(config: LocalMixerConfig, block: number): string[] {
  return linearSites(config)
    .filter((s) => s.block === block)
    .flatMap((s) => [`backbone.${s.index}.w`, `backbone.${s.index}.b`]);
}
