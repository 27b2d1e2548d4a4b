import type { LocalMixerOptions, NormKind, NormPlacementName } from '@fwdgrad/localmixer';
import { type AlgorithmId, type AlgorithmOptions, PRESETS } from '@fwdgrad/trainer';
import { type ErrorPair, TABLE5_SUPERVISED, TABLE6_SUPERVISED, paperErrors } from '../paper.js';
import { barPlot, learningCurves, linePlot, PALETTE } from '@fwdgrad/plot';
import { field, fields, markdownTable, pct, type Row } from '../table.js';
import { meanStd, mixerLabel, pctMeanStd, trainRow } from '../training.js';
import type { Budget, RowSpec, Suite, SuiteOptions, SuitePlan } from '../types.js';

/** The four ablation studies: Figure 6, Figures 7/9, Table 5, Table 6. */
export const ABLATIONS = ['losses', 'groups', 'norm', 'placement'] as const;
export type Ablation = (typeof ABLATIONS)[number];

/** Figure 6's loss placements: every combination of block-, patch- and groupwise losses. */
export const LOSS_COMBOS: { name: string; losses: AlgorithmOptions['losses'] }[] = [
  { name: 'none', losses: { block: false, patch: false, group: false } },
  { name: 'block', losses: { block: true, patch: false, group: false } },
  { name: 'patch', losses: { block: false, patch: true, group: false } },
  { name: 'group', losses: { block: false, patch: false, group: true } },
  { name: 'block+patch', losses: { block: true, patch: true, group: false } },
  { name: 'block+group', losses: { block: true, patch: false, group: true } },
  { name: 'patch+group', losses: { block: false, patch: true, group: true } },
  { name: 'all', losses: { block: true, patch: true, group: true } },
];

const NORM_KINDS: NormKind[] = ['batch', 'layer', 'local-layer'];
const PLACEMENTS: NormPlacementName[] = ['begin', 'before', 'after', 'before+after'];
/** Rules compared in Figure 9 and Tables 5–6 (`lg-fg-a-ng`: LG-FG-A without the normalisation gradient, "NG"). */
const GROUP_ALGOS = ['bp', 'lg-bp', 'lg-fg-a'] as const;
const NORM_ALGOS = ['bp', 'lg-bp', 'lg-fg-a', 'lg-fg-a-ng'] as const;

interface AblationBudget {
  /** The MNIST mixer every ablation starts from (several blocks and patches, so every loss placement means something). */
  model: LocalMixerOptions;
  groups: number[];
  epochs: number;
  limitTrain?: number;
  limitTest?: number;
  seeds: number;
  describe: string;
}

// 2×2 patches (14×14 pixels), not 4×4 or 7×7: 41% of MNIST's 7×7 patches are exactly constant, the
// parameter-free layer norm (ε = 1e-5) maps them to 0 and multiplies any later change by 1/√ε ≈ 316,
// and with several such norms chained in block 0 the first bias updates made every example's
// features identical — LG-BP and LG-FG-A then sat at 88.3% test error (constant prediction) with
// 4×4 patches. 2×2 patches are 0.3% constant and every rule learns. (Measured; the paper ablates
// CIFAR-10 M/8/16, where constant patches are rare.)
const BUDGETS: Record<Budget, AblationBudget> = {
  smoke: {
    model: { blocks: 2, patchesPerSide: 2, channels: 16, groups: 4 },
    groups: [1, 4],
    epochs: 1,
    limitTrain: 256,
    limitTest: 256,
    seeds: 1,
    describe: '256 training examples, 1 epoch, 256 test examples',
  },
  small: {
    model: { blocks: 2, patchesPerSide: 2, channels: 128, groups: 16 },
    groups: [1, 2, 4, 8, 16],
    epochs: 2,
    limitTrain: 5000,
    limitTest: 2000,
    seeds: 1,
    describe: 'the first 5000 training examples, 2 epochs, the first 2000 test examples',
  },
  medium: {
    model: { blocks: 3, patchesPerSide: 2, channels: 256, groups: 16 },
    groups: [1, 2, 4, 8, 16, 32],
    epochs: 3,
    limitTrain: 20000,
    seeds: 1,
    describe: 'the first 20 000 training examples, 3 epochs, the full test set',
  },
  paper: {
    model: { blocks: 4, patchesPerSide: 2, channels: 512, groups: 16 },
    groups: [1, 2, 4, 8, 16, 32, 64],
    epochs: PRESETS['mnist-m116'].epochs,
    seeds: 1,
    describe: `the full training set, the MNIST preset's ${PRESETS['mnist-m116'].epochs} epochs`,
  },
};

function algoOf(name: string): { algorithm: AlgorithmId; options: Partial<AlgorithmOptions> } {
  return name === 'lg-fg-a-ng'
    ? { algorithm: 'lg-fg-a', options: { normGradient: false } }
    : { algorithm: name as AlgorithmId, options: {} };
}

function paperFor(ablation: Ablation, setting: string, algo: string): ErrorPair | null {
  if (ablation === 'norm')
    return (TABLE5_SUPERVISED as Record<string, Record<string, ErrorPair>>)[setting]?.[algo] ?? null;
  if (ablation === 'placement')
    return (TABLE6_SUPERVISED as Record<string, Record<string, ErrorPair>>)[setting]?.[algo] ?? null;
  return null;
}

function plan(budget: Budget, options: SuiteOptions): SuitePlan {
  const b = BUDGETS[budget];
  const seeds = Array.from({ length: options.seeds ?? b.seeds }, (_, i) => i);
  const rows: RowSpec[] = [];
  const add = (
    ablation: Ablation,
    setting: string,
    algoName: string,
    model: LocalMixerOptions,
    extra: Partial<AlgorithmOptions> = {},
  ) => {
    for (const seed of seeds) {
      const key = `${ablation}|${setting}|${algoName}|seed${seed}`;
      const { algorithm, options: algoOptions } = algoOf(algoName);
      const paper = paperFor(ablation, setting, algoName);
      rows.push({
        key,
        run: async (ctx) => ({
          ablation,
          setting,
          variant: algoName,
          ...(await trainRow(ctx, key, {
            preset: 'mnist-m116',
            overrides: { epochs: b.epochs },
            algorithm,
            algorithmOptions: { ...algoOptions, ...extra },
            modelOverrides: model,
            modelLabel: mixerLabel(model),
            seed,
            limitTrain: b.limitTrain,
            limitTest: b.limitTest,
          })),
          ...paperErrors(paper),
        }),
      });
    }
  };
  for (const c of LOSS_COMBOS) add('losses', c.name, 'lg-fg-a', b.model, { losses: c.losses });
  for (const g of b.groups)
    for (const a of GROUP_ALGOS) add('groups', `G=${g}`, a, { ...b.model, groups: g });
  for (const n of NORM_KINDS) for (const a of NORM_ALGOS) add('norm', n, a, { ...b.model, norm: n });
  for (const p of PLACEMENTS)
    for (const a of GROUP_ALGOS) add('placement', p, a, { ...b.model, placement: p });
  const notes = [
    `Dataset: MNIST (the only one bundled). Network: a LocalMixer with ${JSON.stringify(b.model)} ` +
      '(several blocks and patches, so block- and patchwise losses exist; the paper ablates M/8/16 on CIFAR-10). ' +
      '2×2 patches: with 4×4, the 41% of MNIST patches that are blank met the parameter-free layer norm ' +
      '(gain 1/√ε ≈ 316 at a constant input) and the local rules collapsed to a constant prediction.',
    `Budget ${budget}: ${b.describe}, ${seeds.length} seed(s); SGD 0.01/0.9 with linear decay (the MNIST preset).`,
    'Figure 6 (`losses`): LG-FG-A with local losses after every block (`block`: stop-gradient between blocks), per ' +
      'patch (`patch`), per group (`group`), every combination; `none` = one pooled loss on the last block.',
    'Figures 7/9 (`groups`): channel groups G (C′ = C/G); Table 5 (`norm`): batch norm, layer norm, local layer norm, ' +
      '`lg-fg-a-ng` = LG-FG-A without the normalisation gradient; Table 6 (`placement`): where the layer norms sit.',
    'Paper numbers (Tables 5–6) are CIFAR-10 M/8/16 supervised: a different dataset and network, shown for the trend only.',
  ];
  return { config: { ...b, algorithms: { groups: GROUP_ALGOS, norm: NORM_ALGOS } }, seeds, rows, notes };
}

interface Cell {
  setting: string;
  variant: string;
  test: ReturnType<typeof meanStd>;
  train: ReturnType<typeof meanStd>;
  paper: ErrorPair | null;
  problems: string;
}

function cellsFor(rows: Row[], ablation: Ablation): Cell[] {
  const mine = rows.filter((r) => String(r.key).startsWith(`${ablation}|`));
  const combos = [...new Set(mine.map((r) => String(r.key).split('|').slice(1, 3).join('|')))];
  return combos.map((combo) => {
    const [setting, variant] = combo.split('|');
    const g = mine.filter((r) => String(r.key).startsWith(`${ablation}|${combo}|`));
    const ok = g.filter((r) => r.error === undefined && r.skipped === undefined);
    return {
      setting,
      variant,
      test: meanStd(ok, 'test_error'),
      train: meanStd(ok, 'train_error'),
      paper: paperFor(ablation, setting, variant),
      problems: g
        .map((r) => (r.error ? `error: ${r.error}` : r.skipped ? `skipped: ${r.skipped}` : ''))
        .filter(Boolean)
        .join('; '),
    };
  });
}

const TITLES: Record<Ablation, string> = {
  losses: 'Figure 6: where the local losses live (LG-FG-A)',
  groups: 'Figures 7 and 9: number of groups',
  norm: 'Table 5: normalisation kind',
  placement: 'Table 6: placement of the layer norms',
};

function report(rows: Row[]) {
  const sections: string[] = [];
  const plots: { name: string; title: string; svg: string }[] = [];
  const summary: Record<string, unknown> = {};
  for (const ablation of ABLATIONS) {
    const cells = cellsFor(rows, ablation);
    if (cells.length === 0) continue;
    summary[ablation] = cells.map((c) => ({
      setting: c.setting,
      variant: c.variant,
      test_error_mean: c.test?.mean ?? null,
      test_error_std: c.test?.std ?? null,
      train_error_mean: c.train?.mean ?? null,
      train_error_std: c.train?.std ?? null,
      ...paperErrors(c.paper),
    }));
    sections.push(
      `## ${TITLES[ablation]}`,
      '',
      markdownTable(
        [
          'setting',
          'algo',
          'test err %',
          'train err %',
          'paper test % (CIFAR-10)',
          'paper train % (CIFAR-10)',
          'problems',
        ],
        cells.map((c) => [
          c.setting,
          c.variant,
          pctMeanStd(c.test),
          pctMeanStd(c.train),
          c.paper ? c.paper[0].toFixed(2) : '—',
          c.paper ? c.paper[1].toFixed(2) : '—',
          c.problems,
        ]),
      ),
    );
    const settings = [...new Set(cells.map((c) => c.setting))];
    const variants = [...new Set(cells.map((c) => c.variant))];
    const value = (v: string, s: string, which: 'test' | 'train') => {
      const c = cells.find((x) => x.setting === s && x.variant === v);
      const m = which === 'test' ? c?.test : c?.train;
      return m ? 100 * m.mean : null;
    };
    if (ablation === 'losses') {
      plots.push({
        name: 'fig6-losses',
        title: TITLES.losses,
        svg: barPlot({
          title: 'Figure 6 (MNIST): LG-FG-A error by local-loss placement',
          yLabel: 'error %',
          categories: settings,
          series: [
            { name: 'test', values: settings.map((s) => value('lg-fg-a', s, 'test')) },
            { name: 'train', values: settings.map((s) => value('lg-fg-a', s, 'train')) },
          ],
        }),
      });
    } else if (ablation === 'groups') {
      const g = (s: string) => Number(s.replace('G=', ''));
      plots.push({
        name: 'fig9-groups',
        title: 'Figure 9: final error vs number of groups',
        svg: linePlot({
          title: 'Figure 9 (MNIST): error vs groups G',
          xLabel: 'groups G',
          yLabel: 'error %',
          xLog: true,
          xTicks: settings.map(g),
          series: variants.flatMap((v, i) => [
            {
              name: `${v} test`,
              color: PALETTE[i % PALETTE.length],
              points: settings.map((s) => [g(s), value(v, s, 'test') ?? Number.NaN] as [number, number]),
            },
            {
              name: `${v} train`,
              color: PALETTE[i % PALETTE.length],
              dashed: true,
              points: settings.map((s) => [g(s), value(v, s, 'train') ?? Number.NaN] as [number, number]),
            },
          ]),
        }),
      });
      const curves = rows.filter(
        (r) =>
          String(r.key).startsWith('groups|') &&
          r.variant === 'lg-fg-a' &&
          r.seed === 0 &&
          Array.isArray(r.curve),
      );
      if (curves.some((r) => (r.curve as unknown[]).length > 1)) {
        plots.push({
          name: 'fig7-curves',
          title: 'Figure 7: LG-FG-A learning curves by number of groups',
          svg: learningCurves({
            title: 'Figure 7 (MNIST): LG-FG-A test error per epoch',
            yLabel: 'test error %',
            curves: curves.map((r) => ({
              name: String(r.setting),
              points: (r.curve as { epoch: number; test_error: number }[]).map(
                (c) => [c.epoch, 100 * c.test_error] as [number, number],
              ),
            })),
          }),
        });
      }
    } else {
      plots.push({
        name: ablation === 'norm' ? 'table5-norm' : 'table6-placement',
        title: TITLES[ablation],
        svg: barPlot({
          title: `${TITLES[ablation]} (MNIST test error %)`,
          yLabel: 'test error %',
          categories: settings,
          series: variants.map((v) => ({ name: v, values: settings.map((s) => value(v, s, 'test')) })),
        }),
      });
    }
  }
  return { markdown: sections.join('\n'), plots, summary };
}

/** Figure 6, Figures 7/9 and Tables 5–6 on MNIST at a budget. */
export const ablationsSuite: Suite = {
  name: 'ablations',
  title: 'Ablations: local-loss placement (Fig. 6), groups (Fig. 7/9), normalisation (Tables 5–6)',
  plan,
  columns: [
    ...fields('ablation', 'setting'),
    field('variant', 'algo'),
    field('seed'),
    { header: 'test_err_%', value: (r) => pct(r.test_error) },
    { header: 'train_err_%', value: (r) => pct(r.train_error) },
    { header: 'paper_test_%', value: (r) => pct(r.paper_test_error) },
    field('seconds'),
    { header: 'error', value: (r) => r.error ?? r.skipped ?? null },
  ],
  report: (rows) => report(rows),
};
