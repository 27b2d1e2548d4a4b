import * as tf from '@tensorflow/tfjs';
import { jvp, stopGradient, suspended } from '@fwdgrad/jvp-core';
import type { LocalLoss } from '@fwdgrad/local-losses';
import {
  exactContext,
  forwardBackbone,
  type LayerContext,
  type LinearSite,
  linearSites,
} from '@fwdgrad/localmixer';
import {
  type ActivityEstimate,
  type ActivityRecorder,
  activityPerturbedEstimate,
  replicaGroupTangents,
  replicaRoute,
  sampleNoise,
  weightPerturbationGroupedEstimate,
} from '@fwdgrad/perturbation';
import type { Random } from '@fwdgrad/random';
import type { Model } from '../model.js';
import {
  blockReplicasWithHeadGradient,
  classifierGradient,
  finalObjective,
  finalPerRow,
  isContrastive,
  localLossOf,
  namesOf,
  Recorder,
  resultOf,
  scaleHeadGradients,
  trainedGroups,
} from './common.js';
import type { Algorithm, AlgorithmId, AlgorithmOptions, StepBatch, StepResult } from './types.js';

/**
 * The forward-gradient rules (paper section 6 item 3, REFERENCE 1.5–1.6): FG-W, FG-A, LG-FG-W and
 * LG-FG-A. The backbone sees one forward pass that carries tangents (jvp-core) and no
 * reverse-mode pass; the two local exceptions are the ones the paper names: the linear heads and
 * the final classifier learn from their exact gradients on detached features, and (unless "NG")
 * the estimate passes through the exact VJP of the parameter-free normalisation inside its layer.
 */
interface ForwardRuleSpec {
  id: AlgorithmId;
  description: string;
  perturb: 'weights' | 'activities';
  /** Local greedy: local losses per block and a stop-gradient between blocks. */
  local: boolean;
}

const SPECS: Record<string, ForwardRuleSpec> = {
  'fg-w': {
    id: 'fg-w',
    description: 'Weight-perturbed forward gradient of the final loss (Baydin et al. 2022)',
    perturb: 'weights',
    local: false,
  },
  'fg-a': {
    id: 'fg-a',
    description: 'Activity-perturbed forward gradient of the final loss',
    perturb: 'activities',
    local: false,
  },
  'lg-fg-w': {
    id: 'lg-fg-w',
    description: 'Local greedy weight-perturbed forward gradient',
    perturb: 'weights',
    local: true,
  },
  'lg-fg-a': {
    id: 'lg-fg-a',
    description: "Local greedy activity-perturbed forward gradient (the paper's method)",
    perturb: 'activities',
    local: true,
  },
};

/**
 * The LayerContext of activity perturbation: every backbone site goes through the perturbation
 * package's recorder, which adds the noise as a tangent after the site's normalisation (primal
 * unchanged: the forward pass is clean), before the residual and the ReLU, and keeps pre,
 * prenorm and post for the estimate (REFERENCE 1.6).
 */
function activityContext(recorder: ActivityRecorder, stopBetweenBlocks: boolean): LayerContext {
  const base = exactContext({ stopGradientBetweenBlocks: stopBetweenBlocks });
  return {
    ...base,
    activate: (site, { pre, prenorm, normalize, residual }) =>
      recorder.activate(siteName(site), { layout: site.layout, pre, prenorm, normalize, residual }),
  };
}

function siteName(site: LinearSite): string {
  return `backbone.${site.index}`;
}

class ForwardGradientRule implements Algorithm {
  readonly id: AlgorithmId;
  readonly description: string;

  constructor(
    private readonly spec: ForwardRuleSpec,
    private readonly options: AlgorithmOptions,
  ) {
    this.id = spec.id;
    this.description = spec.description;
    if (!Number.isInteger(options.samples) || options.samples < 1) {
      throw new Error(`${spec.id}: samples per step K must be a positive integer, got ${options.samples}`);
    }
  }

  /** Local rules with blockwise losses: a loss per block and stop-gradients; otherwise global. */
  private get blockwise(): boolean {
    return this.spec.local && this.options.losses.block;
  }

  /**
   * Backbone (the estimate), local heads (exact) and, supervised, the classifier (exact, on
   * detached features). Contrastive: the final projection and classifier get no gradient in the
   * main step (REFERENCE 1.7); the linear readout trains the classifier.
   */
  private groups(model: Model, backbone: boolean) {
    return trainedGroups(model, { backbone, heads: this.spec.local, final: !isContrastive(model) });
  }

  trainable(model: Model): string[] {
    return namesOf(model, this.groups(model, true));
  }

  step(model: Model, batch: StepBatch, random: Random): StepResult {
    const loss = this.spec.local ? localLossOf(model, this.options) : null;
    const grads = new Map<string, tf.Tensor>();
    const rec = new Recorder();
    // One forward pass with tangents; it also leaves the local heads' exact gradients in `grads` and
    // their loss in `rec`, and returns the block outputs for the final layer's update.
    const blocks =
      this.spec.perturb === 'activities'
        ? this.activityStep(model, batch, random, loss, grads, rec)
        : this.weightStep(model, batch, random, loss, grads, rec);
    try {
      if (loss !== null) scaleHeadGradients(model, grads, loss, this.options);
      this.finalUpdate(model, batch, blocks, grads, rec);
      if (batch.keepOutput) rec.record('output', blocks[blocks.length - 1]);
    } finally {
      tf.dispose(blocks);
    }
    return resultOf(grads, rec, batch.labels);
  }

  /**
   * The objective whose tangent drives the estimate: the replicated losses of every block (local,
   * each /B, REFERENCE 1.1), of the last block only (local without blockwise), or the final
   * classifier's per-example cross-entropy (global; FG-A sums over the batch, REFERENCE 1.6).
   * Local rules also get every head's exact gradient here (REFERENCE 1.1: heads learn by backprop
   * on detached features) from the same head evaluation (`replicasWithHeadGradient`): kept into
   * `heads`, the local loss's value into `rec`; a block whose loss drives no tangent (local without
   * blockwise) is evaluated with tangents suspended.
   */
  private lossTangentSources(
    model: Model,
    batch: StepBatch,
    loss: LocalLoss | null,
    blocks: tf.Tensor[],
    heads: Map<string, tf.Tensor>,
    rec: Recorder,
  ): tf.Tensor[] {
    if (loss !== null) {
      const sources: tf.Tensor[] = [];
      let local: tf.Tensor = tf.scalar(0);
      blocks.forEach((h, k) => {
        const drives = this.blockwise || k === blocks.length - 1;
        const evaluate = () => blockReplicasWithHeadGradient(model, loss, k, h, batch);
        const { replicas, dw, db } = drives ? evaluate() : suspended(evaluate);
        heads.set(`head.${k}.w`, tf.keep(dw));
        heads.set(`head.${k}.b`, tf.keep(db));
        local = suspended(() => tf.add(local, loss.reduce(replicas)));
        if (drives) sources.push(tf.div(replicas, batch.size));
      });
      suspended(() => rec.record('local', local));
      return sources;
    }
    const { perRow } = finalPerRow(model, blocks[blocks.length - 1], false, batch);
    // FG-W: tangent of the batch-mean loss; FG-A: per-example tangents, not divided by B.
    return [this.spec.perturb === 'weights' ? tf.mean(perRow) : perRow];
  }

  /**
   * FG-W / LG-FG-W's one forward pass with tangents (directions on the backbone weights): the block
   * outputs (for the exact head updates) and, per block, the tangent of the loss its estimate uses —
   * its own local losses, the last block's, or the global loss.
   */
  private weightTangentPass(
    model: Model,
    batch: StepBatch,
    loss: LocalLoss | null,
    grads: Map<string, tf.Tensor>,
    rec: Recorder,
    primals: tf.Tensor[],
    directions: tf.Tensor[],
  ): { blocks: tf.Tensor[]; tangentFor: (block: number) => tf.Tensor; dispose(): void } {
    const k = this.options.samples;
    const sites = linearSites(model.config);
    const ctx = exactContext({ stopGradientBetweenBlocks: this.blockwise });
    const heads = new Map<string, tf.Tensor>();
    let outs: tf.Tensor[];
    let tans: tf.Tensor[];
    try {
      [outs, tans] = jvp(
        (...flat: tf.Tensor[]) => {
          const backbone = sites.map((_, i) => ({ w: flat[2 * i], b: flat[2 * i + 1] }));
          const blocks = forwardBackbone(model.config, { backbone }, batch.x, ctx);
          return [...this.lossTangentSources(model, batch, loss, blocks, heads, rec), ...blocks];
        },
        primals,
        directions,
        k > 1 ? { batched: true, k } : {},
      );
    } catch (e) {
      tf.dispose([...heads.values()]);
      throw e;
    }
    for (const [name, g] of heads) grads.set(name, g);
    const n = outs.length - model.config.blocks;
    tf.dispose([...outs.slice(0, n), ...tans.slice(n)]);
    const sources = tans.slice(0, n);
    return {
      blocks: outs.slice(n),
      tangentFor: (block) => (n === 1 ? sources[0] : sources[block]),
      dispose: () => tf.dispose(sources),
    };
  }

  /**
   * FG-A / LG-FG-A: perturbation's activity estimate of one forward pass with tangents through the activity
   * context, driven by the tangents of `lossTangentSources` (each block's own local losses, the last block's, or
   * the global per-example loss), routed to each site's units by its block (REFERENCE 1.6 step 1). The same
   * pass leaves the local heads' exact gradients in `grads` and returns the block outputs.
   */
  private activityStep(
    model: Model,
    batch: StepBatch,
    random: Random,
    loss: LocalLoss | null,
    grads: Map<string, tf.Tensor>,
    rec: Recorder,
  ): tf.Tensor[] {
    const { options } = this;
    // Contrastive: both views see the same noise (REFERENCE 1.7), rows :B and B: of every site.
    const noise = isContrastive(model)
      ? (_site: string, shape: number[]) =>
          tf.tidy(() => {
            const [k, rows, ...rest] = shape;
            const d = sampleNoise(random, [k, rows / 2, ...rest], options.noise);
            return tf.concat([d, d], 1);
          })
      : options.noise;
    // and the two views' estimates are averaged: gW = (gW₁ + gW₂)/2
    const viewScale = isContrastive(model) ? 0.5 : 1;
    const sites = new Map(linearSites(model.config).map((site) => [siteName(site), site]));
    const heads = new Map<string, tf.Tensor>();
    let estimate: ActivityEstimate;
    try {
      estimate = activityPerturbedEstimate(
        (recorder) => {
          const ctx = activityContext(recorder, this.blockwise);
          const blocks = forwardBackbone(model.config, { backbone: model.params.backbone }, batch.x, ctx);
          return { losses: this.lossTangentSources(model, batch, loss, blocks, heads, rec), outputs: blocks };
        },
        {
          random,
          noise,
          samples: options.samples,
          reluMask: options.reluMask,
          normGradient: options.normGradient,
          route: replicaRoute((r) => (sites.get(r.name) as LinearSite).block),
        },
      );
    } catch (e) {
      tf.dispose([...heads.values()]);
      throw e;
    }
    for (const [name, g] of heads) grads.set(name, g);
    tf.dispose(estimate.losses);
    for (const { name, dw, db } of estimate.sites) {
      grads.set(`${name}.w`, viewScale === 1 ? dw : scaleAndDispose(dw, viewScale));
      grads.set(`${name}.b`, viewScale === 1 ? db : scaleAndDispose(db, viewScale));
    }
    return estimate.outputs;
  }

  private weightStep(
    model: Model,
    batch: StepBatch,
    random: Random,
    loss: LocalLoss | null,
    grads: Map<string, tf.Tensor>,
    rec: Recorder,
  ): tf.Tensor[] {
    const { options } = this;
    const k = options.samples;
    const sites = linearSites(model.config);
    // REFERENCE 1.5: every backbone weight and bias gets a direction; heads get none.
    const primals = model.params.backbone.flatMap((p) => [p.w, p.b]);
    const directions = primals.map((p) =>
      sampleNoise(random, k > 1 ? [k, ...p.shape] : p.shape, options.noise),
    );
    const pass = this.weightTangentPass(model, batch, loss, grads, rec, primals, directions);
    try {
      sites.forEach((site, i) => {
        const t = pass.tangentFor(site.block);
        const s = replicaGroupTangents(site.layout, t, model.params.backbone[site.index].w.shape[0], k > 1);
        const { dw, db } = weightPerturbationGroupedEstimate({
          name: siteName(site),
          layout: site.layout,
          groupTangents: s,
          weightNoise: directions[2 * i],
          biasNoise: directions[2 * i + 1],
        });
        s.dispose();
        grads.set(`${siteName(site)}.w`, dw);
        grads.set(`${siteName(site)}.b`, db as tf.Tensor);
      });
      return pass.blocks;
    } finally {
      pass.dispose();
      tf.dispose(directions);
    }
  }

  dispose(): void {
    // no fixed state
  }

  /**
   * The final layer's exact gradient on the detached last block output (REFERENCE 1.1): the
   * classifier (supervised); contrastive trains none here (the linear readout trains the classifier)
   * but the final loss is still logged.
   */
  private finalUpdate(
    model: Model,
    batch: StepBatch,
    blocks: tf.Tensor[],
    grads: Map<string, tf.Tensor>,
    rec: Recorder,
  ): void {
    const last = blocks[blocks.length - 1];
    if (isContrastive(model)) {
      // nothing to train here (the linear readout trains the classifier); the loss is still logged
      tf.tidy(() => rec.record('loss', finalObjective(model, stopGradient(last), true, batch).loss));
      return;
    }
    const { loss, logits, dw, db } = classifierGradient(model, last, batch);
    rec.record('loss', loss);
    rec.record('logits', logits);
    tf.dispose([loss, logits]);
    grads.set('classifier.w', dw);
    grads.set('classifier.b', db);
  }
}

function scaleAndDispose(t: tf.Tensor, factor: number): tf.Tensor {
  const out = tf.mul(t, factor);
  t.dispose();
  return out;
}

export function isForwardRule(id: string): boolean {
  return id in SPECS;
}

export function createForwardRule(id: AlgorithmId, options: AlgorithmOptions): Algorithm {
  const spec = SPECS[id];
  if (spec === undefined) throw new Error(`not a forward-gradient rule: '${id}'`);
  return new ForwardGradientRule(spec, options);
}
