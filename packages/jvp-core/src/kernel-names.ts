/**
 * Names of the optional fused kernels a backend may register for jvp-core's own ops (`@fwdgrad/native`
 * does, on tfjs's cpu backend). Kernels tfjs defines are named by tfjs's own constants (`tf.Conv2D`, …).
 *
 * `FwdgradLayerNorm` (inputs {x}, attrs {epsilon, axis}) → [y, r] over one axis of x (default −1), r =
 * 1/√(var + ε) of x's shape with that axis set to 1; `FwdgradLayerNormJvp` (inputs {t, y, r}, attrs
 * {axis}, relative to y) → r·((t − E[t]) − y·E[y·t]), t possibly stacked [k, ...y.shape].
 */
export const FUSED_LAYER_NORM = 'FwdgradLayerNorm';
export const FUSED_LAYER_NORM_JVP = 'FwdgradLayerNormJvp';

/**
 * `FwdgradScaleInPlace` (inputs {x, s}, s a float32 scalar): x ← s·x in x's own storage (float32's product,
 * the same bits as `Multiply`), returning x's storage as its output (reference count + 1, as `Reshape`).
 * For a caller that owns x and shares its storage with no one (e.g. turning a perturbation direction into a
 * gradient without a second buffer); it mutates its input, so no op of tfjs runs it.
 */
export const SCALE_IN_PLACE = 'FwdgradScaleInPlace';
