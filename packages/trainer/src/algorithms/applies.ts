import type { AlgorithmId, AlgorithmOptions } from './types.js';

const FORWARD: readonly AlgorithmId[] = ['fg-w', 'fg-a', 'lg-fg-w', 'lg-fg-a'];
const ACTIVITY: readonly AlgorithmId[] = ['fg-a', 'lg-fg-a'];
const LOCAL: readonly AlgorithmId[] = ['l-bp', 'lg-bp', 'readout', 'l-fa', 'lg-fa', 'lg-fg-w', 'lg-fg-a'];
const FEEDBACK: readonly AlgorithmId[] = ['fa', 'l-fa', 'lg-fa', 'dfa'];

/** Which rules read each option (the others ignore it). */
function applies(key: keyof AlgorithmOptions, id: AlgorithmId, options: Partial<AlgorithmOptions>): boolean {
  switch (key) {
    case 'samples':
    case 'noise':
      return FORWARD.includes(id);
    case 'reluMask':
    case 'normGradient':
      return ACTIVITY.includes(id);
    case 'variant':
      return FEEDBACK.includes(id);
    case 'losses':
    case 'lossImpl':
    case 'headGradient':
      // the authors' FA and DFA variants train with local losses too
      return LOCAL.includes(id) || (FEEDBACK.includes(id) && options.variant === 'reference');
  }
}

/**
 * The options set in `options` that rule `id` does not use (e.g. `samples` for `bp`): a caller
 * warns about them, since they would otherwise be recorded but have no effect.
 */
export function ignoredOptions(
  id: AlgorithmId,
  options: Partial<AlgorithmOptions>,
): (keyof AlgorithmOptions)[] {
  return (Object.keys(options) as (keyof AlgorithmOptions)[]).filter(
    (k) => options[k] !== undefined && !applies(k, id, options),
  );
}
