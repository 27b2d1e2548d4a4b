import { customJvp, suspended } from '@fwdgrad/jvp-core';
import * as tf from '@tensorflow/tfjs';

/**
 * Shared algebra of the fused replicated losses (REFERENCE 3.1, paper appendix 12).
 *
 * Both losses have the form: x̄ = mean_P(x) as [R, G·C′]; u = x̄·w + b [R, D]; ℓ_n = ℓ(u_n), a
 * per-row loss whose keys (if any) are constants, with r_n = ∂ℓ_n/∂u_n [R, D]. Replica (n, p′, g′)
 * has value ℓ_n and is differentiable through its own features (see ReplicationOptions) and through
 * the head w, b. Everything below needs only x̄, r and w — never the replicas.
 */
export interface FusedGeometry {
  /** Feature shape [R, P, G, C′]. */
  xShape: [number, number, number, number];
  patchwise: boolean;
  groupwise: boolean;
}

/** [R, P′, G′], the replicated output shape. */
export function replicaShape(g: FusedGeometry): [number, number, number] {
  const [R, P, G] = g.xShape;
  return [R, g.patchwise ? P : 1, g.groupwise ? G : 1];
}

/** The forward value: ℓ [R] tiled to [R, P′, G′] (paper Algorithm 1, "replicate it P×G times"). */
export function tileLoss(loss: tf.Tensor, g: FusedGeometry): tf.Tensor {
  const [R, P2, G2] = replicaShape(g);
  return tf.tidy(() => tf.tile(tf.reshape(loss, [R, 1, 1]), [1, P2, G2]));
}

/** v[n, g, :] = w_g · r_n, as [R, 1, G, C′] (broadcasts over patches). Cost O(R·G·C′·D). */
function headPullback(w: tf.Tensor, r: tf.Tensor, g: FusedGeometry): tf.Tensor {
  const [R, , G, Cg] = g.xShape;
  return tf.reshape(tf.matMul(r, w, false, true), [R, 1, G, Cg]);
}

/** Sums the [.., R, P, G] term over patches / groups that are not replicated (keeping the axes). */
function collapse(t: tf.Tensor, g: FusedGeometry, lead: number): tf.Tensor {
  let out = t;
  if (!g.patchwise) out = tf.sum(out, lead + 1, true);
  if (!g.groupwise) out = tf.sum(out, lead + 2, true);
  return out;
}

/**
 * Fused JVP (REFERENCE 3.1):
 * dL[n,p,g] = Σ_{c,d} (dx[n,p,g,c]/P)·w_g[c,d]·r[n,d] + (x̄·dw + db)_n · r_n,
 * with the first term summed over the patches (groups) a replica owns when patchwise (groupwise) is off.
 * Batched tangents carry a leading axis K. Never builds [R, P, G, G·C′] or [R, P, G, D]:
 * O(R·G·C′·D + K·R·P·G·C′).
 *
 * @returns the output tangent [R, P′, G′] (batched: [K, R, P′, G′]); owned by the caller.
 */
export function fusedTangent(args: {
  geometry: FusedGeometry;
  w: tf.Tensor;
  xbar: tf.Tensor;
  r: tf.Tensor;
  /**
   * Feature tangents as consecutive row blocks of equal size (one block: [dx]; the two contrastive
   * views: [dx, dy]), so that stacked inputs are never concatenated; null = zero tangent.
   */
  dx: (tf.Tensor | null)[];
  dw: tf.Tensor | null;
  db: tf.Tensor | null;
  batched: boolean;
}): tf.Tensor {
  const { geometry: g, w, xbar, r, dx, dw, db, batched } = args;
  const [R, P] = g.xShape;
  const D = w.shape[1] as number;
  const out = replicaShape(g);
  return tf.tidy(() => {
    const lead = batched ? 1 : 0;
    const numTangents = batched ? ([...dx, dw, db].find((t) => t !== null)?.shape[0] ?? 1) : 1;
    const fullShape = batched ? [numTangents, ...out] : out;
    let total: tf.Tensor | null = null;
    const plus = (t: tf.Tensor) => {
      total = total === null ? t : tf.add(total, t);
    };
    if (dx.some((t) => t !== null)) {
      // Σ_c dx[n,p,g,c] · v[n,g,c] / P — one elementwise product the size of dx, per row block.
      const blocks = dx.length;
      const rows = R / blocks;
      const v = headPullback(w, r, g); // [R, 1, G, C′]
      const parts = dx.map((d, i) => {
        if (d === null)
          return tf.zeros(batched ? [numTangents, rows, out[1], out[2]] : [rows, out[1], out[2]]);
        const vi = blocks === 1 ? v : tf.slice(v, [i * rows, 0, 0, 0], [rows, -1, -1, -1]);
        return collapse(tf.div(tf.sum(tf.mul(d, vi), -1), P), g, lead); // [K?, rows, P′, G′]
      });
      plus(parts.length === 1 ? (parts[0] as tf.Tensor) : tf.concat(parts, lead));
    }
    if (dw !== null || db !== null) {
      // a = x̄·dw + db, [K?, R, D]; then a · r_n per row.
      let a: tf.Tensor | null = null;
      if (dw !== null) {
        if (batched) {
          const Kt = dw.shape[0] as number;
          const F = dw.shape[1] as number;
          const flat = tf.reshape(tf.transpose(dw, [1, 0, 2]), [F, Kt * D]);
          a = tf.transpose(tf.reshape(tf.matMul(xbar, flat), [R, Kt, D]), [1, 0, 2]);
        } else {
          a = tf.matMul(xbar, dw);
        }
      }
      if (db !== null) {
        const dbRow = batched ? tf.expandDims(db, 1) : tf.expandDims(db, 0); // [K?, 1, D]
        a = a === null ? dbRow : tf.add(a, dbRow);
      }
      const t2 = tf.sum(tf.mul(a as tf.Tensor, r), -1); // [K?, R] (or [K?, 1] from db alone)
      const t2b = batched
        ? tf.reshape(t2, [t2.shape[0] as number, t2.shape[1] as number, 1, 1])
        : tf.reshape(t2, [t2.shape[0] as number, 1, 1]);
      plus(t2b);
    }
    // Broadcast (a head-only term is constant over patches and groups); zeros if nothing had a tangent.
    return total === null ? tf.zeros(fullShape) : tf.broadcastTo(total as tf.Tensor, fullShape);
  });
}

/**
 * Fused VJP for an arbitrary cotangent ḡ [R, P′, G′] (REFERENCE 3.1 is the uniform case ḡ = g₀):
 * S_n = Σ_{p′,g′} ḡ[n,p′,g′]; dlogits_n = S_n·r_n; dw = x̄ᵀ·dlogits; db = Σ_n dlogits;
 * dx[n,p,g,:] = ḡ[n,p′,g′] · w_g·r_n / P. With ḡ = g₀ everywhere this is dw = x̄ᵀ·g₀·r·(P·G) and
 * dx = w_g·g₀·r_n/P tiled over P, as in the reference.
 *
 * @returns { dx: row blocks of [R,P,G,C′], dw [G·C′, D], db [D] }, owned by the caller.
 */
export function fusedCotangents(args: {
  geometry: FusedGeometry;
  dy: tf.Tensor;
  w: tf.Tensor;
  xbar: tf.Tensor;
  r: tf.Tensor;
  /** Return dx as this many consecutive row blocks (2 for the contrastive views); default 1. */
  blocks?: number;
}): { dx: tf.Tensor[]; dw: tf.Tensor; db: tf.Tensor } {
  const { geometry: g, dy, w, xbar, r, blocks = 1 } = args;
  const [R, P, G, Cg] = g.xShape;
  return tf.tidy(() => {
    const S = tf.reshape(tf.sum(dy, [1, 2]), [R, 1]);
    const dlogits = tf.mul(r, S);
    const dw = tf.matMul(xbar, dlogits, true, false);
    const db = tf.sum(dlogits, 0);
    const v = tf.div(headPullback(w, r, g), P); // [R, 1, G, C′]
    const rows = R / blocks;
    const dx: tf.Tensor[] = [];
    for (let i = 0; i < blocks; i++) {
      const slab = (t: tf.Tensor) =>
        blocks === 1 ? t : tf.slice(t, [i * rows, 0, 0, 0], [rows, -1, -1, -1]);
      const part = tf.mul(slab(tf.expandDims(dy, 3)), slab(v)); // [rows, P′, G, C′]
      dx.push(tf.broadcastTo(part, [rows, P, G, Cg]));
    }
    return { dx, dw, db };
  });
}

/**
 * Where a loss evaluation leaves the exact gradient of Σ(all replicas) with respect to its head's w and b
 * (see {@link headGradientOfSum}); filled by the evaluation with kept tensors, which whoever passed it
 * disposes.
 */
export interface HeadGradientOut {
  /** Multiplies the gradient (e.g. 1/B for the block objective Σ replicas / B). Default 1. */
  scale?: number;
  dw?: tf.Tensor;
  db?: tf.Tensor;
}

/**
 * The head's gradient of Σ_{n,p′,g′} replica (a uniform cotangent 1): the P′·G′ replicas of row n all
 * have the value ℓ_n, so dw = P′G′·x̄ᵀr and db = P′G′·Σ_n r_n — `fusedCotangents` with dy = 1, without
 * the feature cotangent (which a head trained on detached features does not need).
 */
export function headGradientOfSum(
  g: FusedGeometry,
  xbar: tf.Tensor,
  r: tf.Tensor,
  out: HeadGradientOut,
): void {
  const [, P2, G2] = replicaShape(g);
  const factor = P2 * G2 * (out.scale ?? 1);
  const grads = suspended(() =>
    tf.tidy(() => {
      const dw = tf.matMul(xbar, r, true, false);
      const db = tf.sum(r, 0);
      return factor === 1 ? { dw, db } : { dw: tf.mul(dw, factor), db: tf.mul(db, factor) };
    }),
  );
  // kept: the evaluation may run inside the caller's tidy, and `out` outlives it
  out.dw = tf.keep(grads.dw);
  out.db = tf.keep(grads.db);
}

/** A fused loss's head: the per-row losses ℓ [R], the pooled features x̄ [R, G·C′] and r = ∂ℓ/∂u [R, D]. */
export type FusedHead = (
  features: tf.Tensor[],
  w: tf.Tensor,
  b: tf.Tensor,
) => { xbar: tf.Tensor; loss: tf.Tensor; r: tf.Tensor };

/**
 * A fused replicated loss (paper Algorithm 1, REFERENCE 3.1): `head` runs once; the value is ℓ tiled to
 * [R, P′, G′]; customGrad ∘ customJvp with {@link fusedCotangents} / {@link fusedTangent}. `features` are
 * consecutive row blocks of the geometry's R rows (one block; the two contrastive views). The JVP rule
 * reuses the value's x̄ and r instead of running the head again, and with `head` given the head's
 * gradient of Σ(replicas) is built from them too ({@link headGradientOfSum}).
 */
export function fusedHeadLoss(
  g: FusedGeometry,
  features: tf.Tensor[],
  w: tf.Tensor,
  b: tf.Tensor,
  headFn: FusedHead,
  head?: HeadGradientOut,
): tf.Tensor {
  const blocks = features.length;
  let kept: [tf.Tensor, tf.Tensor] | null = null;
  const withGrad = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const inputs = args.slice(0, blocks + 2) as tf.Tensor[];
    const save = args[blocks + 2] as tf.GradSaveFunc;
    const wi = inputs[blocks];
    const { xbar, loss, r } = headFn(inputs.slice(0, blocks), wi, inputs[blocks + 1]);
    save([xbar, r, wi]);
    tf.dispose(kept ?? []);
    kept = [tf.keep(xbar), tf.keep(r)];
    return {
      value: tileLoss(loss, g),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sx, sr, sw] = saved as [tf.Tensor, tf.Tensor, tf.Tensor];
        const { dx, dw, db } = fusedCotangents({ geometry: g, dy, w: sw, xbar: sx, r: sr, blocks });
        return [...dx, dw, db];
      },
    };
  });
  const fused = customJvp(withGrad as (...xs: tf.Tensor[]) => tf.Tensor, ({ inputs, tangents, batched }) =>
    tf.tidy(() => {
      if (kept === null) throw new Error('fused loss: the head pass did not run before its JVP rule');
      const [xbar, r] = kept;
      return fusedTangent({
        geometry: g,
        w: inputs[blocks] as tf.Tensor,
        xbar,
        r,
        dx: tangents.slice(0, blocks),
        dw: tangents[blocks] ?? null,
        db: tangents[blocks + 1] ?? null,
        batched,
      });
    }),
  );
  try {
    const out = fused(...features, w, b);
    if (head !== undefined && kept !== null) headGradientOfSum(g, kept[0], kept[1], head);
    return out;
  } finally {
    tf.dispose(kept ?? []);
  }
}

/**
 * The naive implementation's head gradient of Σ(replicas): `tf.grads` of its loss in (w, b), with tangent
 * tracking suspended (inside `jvp` the features' tangents play no part in it).
 */
export function naiveHeadGradient(
  loss: (w: tf.Tensor, b: tf.Tensor) => tf.Tensor,
  w: tf.Tensor,
  b: tf.Tensor,
  out: HeadGradientOut,
): void {
  const scale = out.scale ?? 1;
  const [dw, db] = suspended(() =>
    tf.tidy(() => tf.grads((wi: tf.Tensor, bi: tf.Tensor) => tf.mul(tf.sum(loss(wi, bi)), scale))([w, b])),
  );
  out.dw = tf.keep(dw);
  out.db = tf.keep(db);
}
