import type * as tf from '@tensorflow/tfjs';

/**
 * The angle in degrees between an update (e.g. the FA or DFA pseudo-gradient of a layer) and the true
 * backprop gradient, both flattened: acos(⟨u, g⟩ / (‖u‖‖g‖)). Pass both with the same sign convention
 * (both gradients). 0° = same direction, 90° = orthogonal (no descent progress to first order), > 90° =
 * ascent. Feedback alignment works when this drops below 90° (Lillicrap et al. 2016).
 *
 * Zero norms: if both tensors are zero the angle is 0 (identical updates, e.g. a dead bias that no rule
 * moves); if exactly one is zero it is 90 (no component along the other). Non-finite entries give NaN.
 * The dot product and norms are accumulated in float64 on the host.
 */
export function alignmentAngle(update: tf.Tensor, trueGradient: tf.Tensor): number {
  const us = update.shape;
  const gs = trueGradient.shape;
  if (us.length !== gs.length || us.some((d, i) => d !== gs[i])) {
    throw new Error(
      `alignmentAngle: the update has shape [${us.join(',')}] but the true gradient has shape ` +
        `[${gs.join(',')}]; pass the two gradients of the same parameter.`,
    );
  }
  const u = update.dataSync();
  const g = trueGradient.dataSync();
  let dot = 0;
  let uu = 0;
  let gg = 0;
  for (let i = 0; i < u.length; i++) {
    dot += u[i] * g[i];
    uu += u[i] * u[i];
    gg += g[i] * g[i];
  }
  if (!Number.isFinite(dot) || !Number.isFinite(uu) || !Number.isFinite(gg)) return Number.NaN;
  if (uu === 0 && gg === 0) return 0;
  if (uu === 0 || gg === 0) return 90;
  const cos = Math.max(-1, Math.min(1, dot / Math.sqrt(uu * gg)));
  return (Math.acos(cos) * 180) / Math.PI;
}

/**
 * {@link alignmentAngle} for many layers at once: `updates` and `trueGradients` are two arrays of the same
 * length (angle i pairs entry i), or two maps with the same keys (e.g. the `grads` of two
 * `tf.variableGrads` calls, one with the FA/DFA ops and one with the plain ops). Returns the angles in
 * degrees in the same form. Throws if the lengths or keys differ.
 */
export function alignmentAngles(updates: readonly tf.Tensor[], trueGradients: readonly tf.Tensor[]): number[];
export function alignmentAngles(
  updates: Readonly<Record<string, tf.Tensor>>,
  trueGradients: Readonly<Record<string, tf.Tensor>>,
): Record<string, number>;
export function alignmentAngles(
  updates: readonly tf.Tensor[] | Readonly<Record<string, tf.Tensor>>,
  trueGradients: readonly tf.Tensor[] | Readonly<Record<string, tf.Tensor>>,
): number[] | Record<string, number> {
  if (Array.isArray(updates) !== Array.isArray(trueGradients)) {
    throw new Error('alignmentAngles: pass two arrays or two maps (name → tensor), not one of each.');
  }
  if (Array.isArray(updates)) {
    const g = trueGradients as readonly tf.Tensor[];
    if (updates.length !== g.length) {
      throw new Error(
        `alignmentAngles: ${updates.length} updates but ${g.length} true gradients; pass one per layer each.`,
      );
    }
    return updates.map((u, i) => alignmentAngle(u, g[i]));
  }
  const u = updates as Readonly<Record<string, tf.Tensor>>;
  const g = trueGradients as Readonly<Record<string, tf.Tensor>>;
  const uk = Object.keys(u).sort();
  const gk = Object.keys(g).sort();
  const missing = uk.filter((k) => !(k in g)).concat(gk.filter((k) => !(k in u)));
  if (missing.length > 0) {
    throw new Error(
      `alignmentAngles: the two maps differ in keys (${missing.join(', ')}); pass the same parameters in both.`,
    );
  }
  const out: Record<string, number> = {};
  for (const k of uk) out[k] = alignmentAngle(u[k], g[k]);
  return out;
}
