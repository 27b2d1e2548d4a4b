import * as tf from '@tensorflow/tfjs';
import type { LinearLayout } from '@fwdgrad/linear';
import type { TangentRoute } from './activity.js';
import type { ActivityRecord } from './sites.js';

/**
 * How the tangents of local losses replicated over patches and groups (paper §4, REFERENCE 1.1: one loss per
 * example n, patch p and group g of a block's output) reach that block's layers, for the three layouts of
 * `@fwdgrad/linear` with the units of LocalMixer's layers: token mixing [N, C, P], dense channel mixing
 * [N, P, Hd] (Hd split into G groups of consecutive units) and grouped channel mixing [N, P, G, C′].
 */

/**
 * The loss tangent that reaches each unit of a layer (REFERENCE 1.6 step 1), from the tangent t of its block's
 * replicated losses `[K, N, P′, G′]` (P′, G′ are 1 when patch/group replication is off) or of per-example
 * losses `[K, N]`; `unitRank` is the rank of the layer's activation:
 * - token mixing (units [N, C, P]): Σ_g t[k, n, p, g], broadcast over channels: `[K, N, 1, P′]`;
 * - dense (units [N, P, Hd]): t itself, one tangent per group of Hd/G′ consecutive units on the last axis
 *   (`activityWeightGradient` spreads it without materialising [K, N, P, Hd]);
 * - grouped (units [N, P, G, C′]): `[K, N, P′, G′, 1]`, broadcast over C′;
 * - per-example tangents: `[K, N, 1, …]`.
 * The result broadcasts against the layer's noise `[K, ...units]`.
 */
export function replicaUnitTangent(layout: LinearLayout, t: tf.Tensor, unitRank: number): tf.Tensor {
  const [k, ...body] = t.shape;
  if (body.length === 1) return tf.reshape(t, [k, body[0], ...new Array(unitRank - 1).fill(1)]);
  if (body.length !== 3) {
    throw new Error(
      `replicaUnitTangent: the tangent has shape [${t.shape.join(', ')}]; expected replicated losses ` +
        '[K, N, P′, G′] or per-example losses [K, N]',
    );
  }
  const [n, p] = body;
  if (layout === 'token') return tf.reshape(tf.sum(t, -1), [k, n, 1, p]);
  if (layout === 'grouped') return tf.expandDims(t, -1);
  return t;
}

/**
 * The {@link TangentRoute} of replicated local losses: the losses of the pass are one tensor per block (or a
 * single one for every site), `blockOf(record)` names the block of a site, and {@link replicaUnitTangent} maps
 * its tangent to the site's units.
 */
export function replicaRoute(blockOf: (record: ActivityRecord) => number): TangentRoute {
  return (record, tangents) =>
    replicaUnitTangent(
      record.layout,
      tangents.length === 1 ? tangents[0] : tangents[blockOf(record)],
      record.prenorm.rank,
    );
}

/**
 * s_g of REFERENCE 1.5 for a layer of `layout` with `groups` groups (the weight-perturbed LG-FG-W estimate,
 * `weightPerturbationGroupedEstimate`): the per-group directional derivatives Σ_{n,p} t[(k,) n, p, g] of its
 * block's replicated losses `[(K,) N, P′, G′]`, or the scalar tangent `[(K)]` of a global loss as one group —
 * repeated over a grouped layer's groups when there are no groupwise losses, so that every direction is
 * multiplied by it. `batched`: t has a leading K axis. Returns `[G′]` or `[K, G′]` (`[groups]` for grouped
 * layers without groupwise losses).
 */
export function replicaGroupTangents(
  layout: LinearLayout,
  t: tf.Tensor,
  groups: number,
  batched: boolean,
): tf.Tensor {
  return tf.tidy(() => {
    const lead = batched ? 1 : 0;
    const s = t.rank - lead === 0 ? tf.reshape(t, [...t.shape, 1]) : tf.sum(t, [lead, lead + 1]);
    const g = s.shape[s.rank - 1];
    if (layout === 'grouped' && g === 1 && groups > 1) {
      return tf.tile(s, [...s.shape.slice(0, -1).map(() => 1), groups]);
    }
    return s;
  });
}
