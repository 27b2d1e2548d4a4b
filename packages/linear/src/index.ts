/**
 * @fwdgrad/linear — the linear-layer vocabulary shared by localmixer, perturbation and baselines-fa: the
 * dense, grouped and token-mixing layouts, their product, parameter gradients and input cotangent, shape
 * checks that name the fix, and the authors' initialisation (REFERENCE 0).
 */
export { type InitScheme, initScale, initWeight } from './init.js';
export {
  applyLinear,
  checkLayout,
  checkLinearShapes,
  type LinearLayout,
  linearInputCotangent,
  linearLayouts,
  linearParamGradients,
} from './linear.js';
