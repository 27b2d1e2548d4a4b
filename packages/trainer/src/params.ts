import * as tf from '@tensorflow/tfjs';

/** Whether a parameter is a weight (decayed) or a bias (never decayed; REFERENCE §1.1). */
export type ParamKind = 'weight' | 'bias';

/**
 * Which part of the network a parameter belongs to. It decides the learning-rate scale
 * (REFERENCE §1.1: local heads × `head_lr`, final classifier × `last_layer_lr`) and the
 * LARS weight-decay mask (backbone weights only, REFERENCE §4).
 */
export type ParamGroup = 'backbone' | 'head' | 'classifier' | 'projection';

/**
 * One trainable parameter: the currency between the trainer's pieces (optimisers,
 * checkpoints, algorithms). A model is a flat, ordered list of these (REFERENCE §0
 * parameter order: backbone layers, local heads, projection, classifier).
 */
export interface ParamEntry {
  /** Unique, stable name (used as the key for gradients, optimiser state and checkpoints). */
  name: string;
  variable: tf.Variable;
  kind: ParamKind;
  group: ParamGroup;
}

/** Tensors by name (parameters, optimiser state) — the shape of a checkpoint section. */
export type NamedTensors = Record<string, tf.Tensor>;

const KINDS: readonly ParamKind[] = ['weight', 'bias'];
const GROUPS: readonly ParamGroup[] = ['backbone', 'head', 'classifier', 'projection'];

/**
 * Checks a parameter list: names unique and non-empty, known kinds and groups.
 * Throws an Error naming the offending entry.
 */
export function validateParams(entries: readonly ParamEntry[]): void {
  const seen = new Set<string>();
  entries.forEach((e, i) => {
    if (typeof e.name !== 'string' || e.name.length === 0) {
      throw new Error(`Parameter #${i} has an empty name; give every ParamEntry a unique name.`);
    }
    if (seen.has(e.name)) {
      throw new Error(`Parameter name '${e.name}' is used twice (entry #${i}); names must be unique.`);
    }
    seen.add(e.name);
    if (!KINDS.includes(e.kind)) {
      throw new Error(`Parameter '${e.name}' has kind '${e.kind}'; use one of ${KINDS.join(', ')}.`);
    }
    if (!GROUPS.includes(e.group)) {
      throw new Error(`Parameter '${e.name}' has group '${e.group}'; use one of ${GROUPS.join(', ')}.`);
    }
    if (!(e.variable instanceof tf.Variable)) {
      throw new Error(`Parameter '${e.name}' holds no tf.Variable; create it with tf.variable(tensor).`);
    }
  });
}

/**
 * The parameters as named tensors, for {@link saveCheckpoint}. The values are the live
 * variables themselves (not copies): read them, do not dispose them.
 */
export function namedParams(entries: readonly ParamEntry[]): NamedTensors {
  const out: NamedTensors = {};
  for (const e of entries) out[e.name] = e.variable;
  return out;
}

/**
 * Assigns saved values (e.g. a checkpoint's `params`) to the parameters, after checking that
 * every parameter has a saved value of the same shape. Nothing is assigned when a check fails.
 * The caller keeps ownership of `values`.
 */
export function assignParams(entries: readonly ParamEntry[], values: NamedTensors): void {
  const missing = entries.filter((e) => !(e.name in values)).map((e) => e.name);
  if (missing.length > 0) {
    throw new Error(
      `The saved parameters lack ${missing.length} of the model's parameters (${missing.slice(0, 5).join(', ')}` +
        `${missing.length > 5 ? ', …' : ''}); the checkpoint belongs to another model configuration.`,
    );
  }
  const known = new Set(entries.map((e) => e.name));
  const extra = Object.keys(values).filter((n) => !known.has(n));
  if (extra.length > 0) {
    throw new Error(
      `The saved parameters hold ${extra.length} name(s) the model does not have (${extra.slice(0, 5).join(', ')}` +
        `${extra.length > 5 ? ', …' : ''}); the checkpoint belongs to another model configuration.`,
    );
  }
  for (const e of entries) {
    const v = values[e.name];
    if (!tf.util.arraysEqual(v.shape, e.variable.shape)) {
      throw new Error(
        `Saved parameter '${e.name}' has shape [${v.shape}] but the model's has [${e.variable.shape}]; ` +
          'the checkpoint belongs to another model configuration.',
      );
    }
  }
  for (const e of entries) e.variable.assign(values[e.name]);
}
