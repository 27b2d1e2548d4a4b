import type * as tf from '@tensorflow/tfjs';

/**
 * The JVP rule registry, one rule per tfjs kernel name: the forward-mode counterpart of tfjs's gradient
 * registry (tfjs-core `src/gradients/*_grad.ts`), keyed like JAX's `primitive_jvps`. The rules live in
 * one file per kernel family (elementwise, reductions, shape, linalg, nn, conv) and are keyed by the
 * kernel-name constants tfjs exports (`tf.Add`, `tf.FusedConv2D`, …).
 *
 * A rule receives the kernel's inputs, their tangents (`null` = zero), attributes and outputs and
 * returns the outputs' tangents (`null` = zero). With batched tangents every tangent has a leading axis
 * of size K; the helpers of `helpers.ts` (`defLinear`, `foldBatch`, `lift`, `fit`, `sumTerms`) keep
 * rules readable in both modes. Rules run with the current jvp level suspended, inside a `tf.tidy`.
 */
export interface JvpRuleContext {
  inputs: Record<string, tf.Tensor>;
  tangents: Record<string, tf.Tensor | null>;
  attrs: Record<string, unknown>;
  outputs: tf.Tensor[];
  /** Tangents carry a leading axis of size `k`. */
  batched: boolean;
  k: number;
  /**
   * A tangent added to the kernel's linear part (before a fused activation) by the running jvp (an
   * activity perturbation at a linear kernel, see `variableJvp`'s `perturb`); `null` almost always.
   * Only the rules of linear kernels (`LINEAR_KERNELS`) receive one.
   */
  perturbation: tf.Tensor | null;
}

export type JvpRule = (ctx: JvpRuleContext) => tf.Tensor | (tf.Tensor | null)[] | null;

/** A family's rules: kernel name → rule. */
export type RuleTable = Record<string, JvpRule>;

/**
 * One registry per process, kept on `globalThis` under a registered symbol (as tfjs keeps its engine): when
 * both builds of this package are loaded (the ESM one by one importer, the CJS one by another, or two bundled
 * copies), a rule registered through either is seen by both.
 */
const REGISTRY = Symbol.for('@fwdgrad/jvp-core/jvp-rules');
const shared = globalThis as { [REGISTRY]?: Map<string, JvpRule> };
if (shared[REGISTRY] === undefined) shared[REGISTRY] = new Map();
const registry: Map<string, JvpRule> = shared[REGISTRY];

/** Registers (or replaces) the JVP rule of a tfjs kernel. */
export function registerJvpRule(kernelName: string, rule: JvpRule): void {
  registry.set(kernelName, rule);
}

export function getRule(kernelName: string): JvpRule | undefined {
  return registry.get(kernelName);
}

/** Kernel names that have a JVP rule, sorted. */
export function supportedKernels(): string[] {
  return [...registry.keys()].sort();
}

export function registerTable(table: RuleTable): void {
  for (const [name, rule] of Object.entries(table)) registerJvpRule(name, rule);
}
