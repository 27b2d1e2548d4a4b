/**
 * The paper's numbers, copied from "Scaling Forward Gradient with Local Losses" (Ren et al., ICLR
 * 2023) so that reports can put ours beside them. Errors in percent, `[test, train]`.
 */

/** An error pair in percent: test, train. */
export type ErrorPair = readonly [test: number, train: number];

/** A paper error pair (percent) as the rows' fraction fields; nulls where the paper has none. */
export function paperErrors(pair: ErrorPair | undefined | null): {
  paper_test_error: number | null;
  paper_train_error: number | null;
} {
  return pair
    ? { paper_test_error: pair[0] / 100, paper_train_error: pair[1] / 100 }
    : { paper_test_error: null, paper_train_error: null };
}

/** Table 3 (supervised), MNIST columns: S/1/1 and M/1/16 (test / train error %). */
export const TABLE3_MNIST: Readonly<Record<'S/1/1' | 'M/1/16', Readonly<Record<string, ErrorPair>>>> = {
  'S/1/1': {
    bp: [2.66, 0.0],
    'l-bp': [2.38, 0.0],
    'lg-bp': [2.43, 0.0],
    fa: [2.82, 0.0],
    'l-fa': [3.21, 0.0],
    'lg-fa': [3.11, 0.0],
    dfa: [3.31, 0.0],
    'fg-w': [9.25, 8.93],
    'fg-a': [3.24, 1.53],
    'lg-fg-w': [9.25, 8.93],
    'lg-fg-a': [3.24, 1.53],
  },
  'M/1/16': {
    bp: [2.41, 0.0],
    'l-bp': [2.16, 0.0],
    'lg-bp': [2.81, 0.0],
    fa: [2.9, 0.0],
    'l-fa': [2.9, 0.0],
    'lg-fa': [2.5, 0.0],
    dfa: [3.17, 0.0],
    'fg-w': [8.56, 8.64],
    'fg-a': [3.76, 1.75],
    'lg-fg-w': [5.66, 4.59],
    'lg-fg-a': [2.55, 0.0],
  },
};

/** Table 4 (contrastive, linear readout), CIFAR-10 M/8/16 column (test / train error %). */
export const TABLE4_CIFAR_M816: Readonly<Record<string, ErrorPair>> = {
  bp: [24.11, 21.08],
  'l-bp': [24.69, 21.8],
  'lg-bp': [29.63, 25.6],
  fa: [45.87, 44.06],
  'l-fa': [37.73, 36.13],
  'lg-fa': [36.72, 34.06],
  dfa: [46.09, 42.76],
  'fg-w': [53.37, 51.56],
  'fg-a': [54.59, 52.96],
  'lg-fg-w': [52.66, 50.23],
  'lg-fg-a': [32.88, 29.73],
};

/** Table 5 (normalisation kind), CIFAR-10 M/8/16 supervised (test / train error %). */
export const TABLE5_SUPERVISED: Readonly<
  Record<'batch' | 'layer' | 'local-layer', Readonly<Record<string, ErrorPair>>>
> = {
  batch: { bp: [30.38, 0.0], 'lg-bp': [33.41, 5.41], 'lg-fg-a': [32.84, 23.09], 'lg-fg-a-ng': [33.48, 20.8] },
  layer: {
    bp: [30.55, 0.0],
    'lg-bp': [33.17, 7.09],
    'lg-fg-a': [29.03, 17.63],
    'lg-fg-a-ng': [29.33, 19.26],
  },
  'local-layer': {
    bp: [32.89, 0.0],
    'lg-bp': [33.84, 0.05],
    'lg-fg-a': [30.68, 19.39],
    'lg-fg-a-ng': [30.44, 17.12],
  },
};

/** Table 6 (placement of LayerNorm), CIFAR-10 M/8/16 supervised (test / train error %). */
export const TABLE6_SUPERVISED: Readonly<
  Record<'begin' | 'before' | 'after' | 'before+after', Readonly<Record<string, ErrorPair>>>
> = {
  begin: { bp: [31.43, 0.0], 'lg-bp': [34.73, 1.45], 'lg-fg-a': [34.89, 31.11] },
  before: { bp: [32.5, 0.0], 'lg-bp': [34.15, 0.05], 'lg-fg-a': [33.88, 27.94] },
  after: { bp: [30.38, 0.0], 'lg-bp': [29.83, 0.44], 'lg-fg-a': [29.35, 23.19] },
  'before+after': { bp: [33.62, 0.0], 'lg-bp': [33.84, 0.05], 'lg-fg-a': [30.68, 19.39] },
};
