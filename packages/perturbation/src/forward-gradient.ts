import type * as tf from '@tensorflow/tfjs';
import {
  type ActivityPerturbationOptions,
  activityPerturbedGradient,
  type SitesForward,
} from './activity.js';
import { plainSites } from './sites.js';
import { type ForwardGradientResult, weightPerturbedGradient } from './weight.js';

/** Options of {@link forwardGradient}: the perturbation and its estimator's options. */
export type ForwardGradientOptions = ActivityPerturbationOptions & {
  /** `'weight'`: FG-W (eq. 2); `'activity'`: FG-A (eq. 3). */
  perturb: 'weight' | 'activity';
};

/**
 * The generic entry point (DESIGN principle 2): a forward-gradient estimate for a network written once against
 * {@link Sites}, by weight perturbation (directions over all `params`, shared by the batch; `normGradient`
 * and `reluMask` do not apply) or by activity perturbation (noise at every `sites.linear`, independent per
 * example). `forward(params, sites)` returns per-example losses [N] or a scalar.
 */
export function forwardGradient(
  forward: SitesForward,
  params: tf.Tensor[],
  options: ForwardGradientOptions,
): ForwardGradientResult {
  const { perturb, ...rest } = options ?? ({} as ForwardGradientOptions);
  if (perturb === 'activity') return activityPerturbedGradient(forward, params, rest);
  if (perturb === 'weight') {
    if (typeof rest.noise === 'function') {
      throw new Error(
        "forwardGradient: a noise function applies to perturb: 'activity' only; use 'gaussian' or 'rademacher'",
      );
    }
    const { value, grads, directionalDerivatives } = weightPerturbedGradient(
      (...ps) => forward(ps, plainSites),
      params,
      {
        random: rest.random,
        samples: rest.samples,
        noise: rest.noise,
        reduction: rest.reduction,
        names: rest.names,
      },
    );
    directionalDerivatives.dispose();
    return { value, grads };
  }
  throw new Error(`forwardGradient: perturb must be 'weight' or 'activity', got ${JSON.stringify(perturb)}`);
}
