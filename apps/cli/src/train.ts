import { join, resolve } from 'node:path';
import type { Dataset } from '@fwdgrad/datasets';
import { loadDataset } from '@fwdgrad/datasets/node';
import { presets as modelPresets, resolveConfig } from '@fwdgrad/localmixer';
import {
  ALGORITHM_IDS,
  type AlgorithmOptions,
  type ExperimentOverrides,
  ignoredOptions,
  modelConfigFor,
  PRESET_NAMES,
  parseAlgorithmId,
  resolveExperiment,
} from '@fwdgrad/trainer';
import {
  type BackendRequest,
  checkTrainSettings,
  describeSelection,
  selectBackend,
  stepWork,
  type TrainOptions,
  TrainingInterruptedError,
  train,
} from '@fwdgrad/trainer/node';
import {
  abortOnSignals,
  applyConfigFile,
  CommandError,
  integer,
  nonNegativeNumber,
  positiveInt,
  positiveNumber,
  SIGNAL_EXIT,
  UsageError,
} from '@fwdgrad/cli-kit/node';
import { trainPipelined } from '@fwdgrad/trainer/pipeline';
import { type Command, InvalidArgumentError, Option } from 'commander';

/** Datasets the CLI can train on, and the loader name behind each. */
const DATASETS = { mnist: 'mnist', idx: 'idx', cifar10: 'cifar10', folder: 'image-folder' } as const;
type CliDataset = keyof typeof DATASETS;

function lossPlacement(value: string): AlgorithmOptions['losses'] {
  const parts = value.split(',').map((s) => s.trim());
  const allowed = ['block', 'patch', 'group', 'none'];
  for (const p of parts) {
    if (!allowed.includes(p)) {
      throw new InvalidArgumentError(
        `--losses takes a comma list of block, patch, group (or none), got '${p}'`,
      );
    }
  }
  return { block: parts.includes('block'), patch: parts.includes('patch'), group: parts.includes('group') };
}

interface TrainFlags {
  parallelBlocks?: number;
  preset?: string;
  dataset: CliDataset;
  dataDir?: string;
  model?: string;
  algo: string;
  objective?: 'supervised' | 'contrastive';
  epochs?: number;
  batchSize?: number;
  lr?: number;
  momentum?: number;
  weightDecay?: number;
  headLr?: number;
  lastLayerLr?: number;
  optimizer?: 'sgd' | 'lars';
  schedule?: 'constant' | 'linear' | 'warmup-cosine' | 'staircase';
  warmupEpochs?: number;
  seed: number;
  limitTrain?: number;
  limitTest?: number;
  runDir?: string;
  resume?: boolean;
  backend: BackendRequest;
  json?: boolean;
  samples?: number;
  noise?: 'gaussian' | 'rademacher';
  reluMask: boolean;
  normGrad: boolean;
  losses?: AlgorithmOptions['losses'];
  variant?: 'paper' | 'reference';
  lossImpl?: 'fused' | 'naive';
  headGradient?: 'pooled' | 'replicas';
  blocks?: number;
  channels?: number;
  groups?: number;
  patches?: number;
  progress: boolean;
  plots: boolean;
  logEvery?: number;
  config?: string;
}

/** The flag of each algorithm option, for warnings. */
const OPTION_FLAGS: Record<keyof AlgorithmOptions, string> = {
  samples: '--samples',
  noise: '--noise',
  reluMask: '--no-relu-mask',
  normGradient: '--no-norm-grad',
  losses: '--losses',
  variant: '--variant',
  lossImpl: '--loss-impl',
  headGradient: '--head-gradient',
};

/** The preset an experiment starts from when --preset is not given. */
function defaultPreset(dataset: CliDataset, model: string | undefined): string {
  if (dataset === 'cifar10') return model?.startsWith('L') ? 'cifar10-l864' : 'cifar10-m816';
  if (dataset === 'folder') return 'imagenet-l3264';
  return model === 'S/1/1' ? 'mnist-s11' : 'mnist-m116';
}

export function registerTrain(program: Command, backendOption: () => Option): void {
  program
    .command('train')
    .description("train a LocalMixer with one of the paper's learning rules")
    .addOption(
      new Option('--preset <name>', 'experiment preset (paper appendix 11)').choices([...PRESET_NAMES]),
    )
    .addOption(new Option('--dataset <name>', 'dataset').choices(Object.keys(DATASETS)).default('mnist'))
    .option('--data-dir <dir>', 'dataset folder (idx, cifar10, folder; mnist is bundled)')
    .addOption(new Option('--model <code>', 'LocalMixer size code').choices(Object.keys(modelPresets)))
    .addOption(new Option('--algo <id>', 'learning rule').choices([...ALGORITHM_IDS]).default('lg-fg-a'))
    .addOption(new Option('--objective <kind>', 'training objective').choices(['supervised', 'contrastive']))
    .option('--epochs <n>', 'epochs', positiveInt('--epochs'))
    .option('--batch-size <n>', 'batch size', positiveInt('--batch-size'))
    .option('--lr <x>', 'learning rate', positiveNumber('--lr'))
    .option('--momentum <x>', 'SGD/LARS momentum', nonNegativeNumber('--momentum'))
    .option('--weight-decay <x>', 'weight decay (weights only)', nonNegativeNumber('--weight-decay'))
    .option(
      '--head-lr <x>',
      'learning-rate multiplier of the local heads (head_lr)',
      nonNegativeNumber('--head-lr'),
    )
    .option(
      '--last-layer-lr <x>',
      'learning-rate multiplier of the final classifier (last_layer_lr)',
      nonNegativeNumber('--last-layer-lr'),
    )
    .addOption(new Option('--optimizer <kind>', 'optimiser').choices(['sgd', 'lars']))
    .addOption(
      new Option('--schedule <kind>', 'learning-rate schedule').choices([
        'constant',
        'linear',
        'warmup-cosine',
        'staircase',
      ]),
    )
    .option('--warmup-epochs <n>', 'warm-up epochs (warmup-cosine)', nonNegativeNumber('--warmup-epochs'))
    .option('--seed <n>', 'random seed', integer('--seed'), 0)
    .option('--limit-train <n>', 'train on the first N examples', positiveInt('--limit-train'))
    .option('--limit-test <n>', 'evaluate on the first N test examples', positiveInt('--limit-test'))
    .option('--run-dir <dir>', 'run folder (default runs/<algo>-<model>-<dataset>-<time>)')
    .option('--resume', 'continue the run in --run-dir from its newest checkpoint')
    .addOption(backendOption())
    .option('--json', 'print a JSON summary as the last line')
    .option('--samples <k>', 'forward gradient: noise samples per step', positiveInt('--samples'))
    .addOption(
      new Option('--noise <kind>', 'forward gradient: noise distribution').choices([
        'gaussian',
        'rademacher',
      ]),
    )
    .option('--no-relu-mask', 'forward gradient: do not mask the activity estimate with the ReLU derivative')
    .option('--no-norm-grad', 'forward gradient: skip the normalisation VJP (the paper\'s "NG")')
    .option(
      '--losses <list>',
      'where local losses live: comma list of block, patch, group (or none)',
      lossPlacement,
    )
    .addOption(
      new Option('--variant <v>', "FA/DFA definitions: the paper's or the authors' code").choices([
        'paper',
        'reference',
      ]),
    )
    .addOption(new Option('--loss-impl <impl>', 'replicated loss implementation').choices(['fused', 'naive']))
    .addOption(
      new Option(
        '--head-gradient <kind>',
        "local heads' update: of the pooled loss (default, as the authors' code), or of the sum of replicas",
      ).choices(['pooled', 'replicas']),
    )
    .option('--blocks <n>', 'custom size: blocks', positiveInt('--blocks'))
    .option('--channels <n>', 'custom size: channels', positiveInt('--channels'))
    .option('--groups <n>', 'custom size: channel groups', positiveInt('--groups'))
    .option('--patches <n>', 'custom size: patches per image side', positiveInt('--patches'))
    .option('--no-progress', 'no progress bar / periodic lines')
    .option(
      '--parallel-blocks <n>',
      'local rules: train the blocks in N stages on worker threads at once (activations flow forward only; ' +
        'Ctrl-C drains the pipeline and writes a checkpoint, --resume continues)',
      positiveInt('--parallel-blocks'),
    )
    .option('--log-every <n>', 'append a row to steps.jsonl every N steps', positiveInt('--log-every'))
    .option('--no-plots', 'do not draw the learning curves (loss.svg, error.svg) after each epoch')
    .option(
      '--config <file>',
      'JSON file of settings by flag name ({"batch-size": 64, …}); flags override it',
    )
    .action(async (given: TrainFlags, command: Command) => {
      if (given.config !== undefined) applyConfigFile(command, given.config);
      const flags = command.opts<TrainFlags>();
      const lrGiven = ['cli', 'config'].includes(command.getOptionValueSource('lr') ?? '');
      const summary = await runTrain(flags, { changeLr: flags.resume === true && lrGiven });
      if (flags.json) console.log(JSON.stringify(summary));
    });
}

/** Turns a settings error found before training into a usage error (exit 2; nothing written yet). */
function asUsageError<T>(check: () => T): T {
  try {
    return check();
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
}

async function runTrain(flags: TrainFlags, extra: { changeLr: boolean }) {
  if (flags.resume && flags.runDir === undefined) {
    throw new UsageError('--resume needs --run-dir: the run folder to continue');
  }
  const algo = parseAlgorithmId(flags.algo);
  const presetName = flags.preset ?? defaultPreset(flags.dataset, flags.model);
  const overrides: ExperimentOverrides = {};
  const set = <K extends keyof ExperimentOverrides>(k: K, v: ExperimentOverrides[K] | undefined) => {
    if (v !== undefined) overrides[k] = v;
  };
  // the recorded experiment names the data actually trained on (a preset may be another dataset's)
  if (flags.dataset === 'mnist' || flags.dataset === 'cifar10') set('dataset', flags.dataset);
  set('model', flags.model as ExperimentOverrides['model']);
  set('objective', flags.objective);
  set('epochs', flags.epochs);
  set('batchSize', flags.batchSize);
  set('lr', flags.lr);
  set('momentum', flags.momentum);
  set('weightDecay', flags.weightDecay);
  set('headLr', flags.headLr);
  set('lastLayerLr', flags.lastLayerLr);
  set('optimizer', flags.optimizer);
  set('schedule', flags.schedule);
  set('warmupEpochs', flags.warmupEpochs);
  const experiment = asUsageError(() => resolveExperiment(presetName, overrides));

  const algorithmOptions: Partial<AlgorithmOptions> = {};
  if (flags.samples !== undefined) algorithmOptions.samples = flags.samples;
  if (flags.noise !== undefined) algorithmOptions.noise = flags.noise;
  if (flags.reluMask === false) algorithmOptions.reluMask = false;
  if (flags.normGrad === false) algorithmOptions.normGradient = false;
  if (flags.losses !== undefined) algorithmOptions.losses = flags.losses;
  if (flags.variant !== undefined) algorithmOptions.variant = flags.variant;
  if (flags.lossImpl !== undefined) algorithmOptions.lossImpl = flags.lossImpl;
  if (flags.headGradient !== undefined) algorithmOptions.headGradient = flags.headGradient;
  for (const key of ignoredOptions(algo, algorithmOptions)) {
    process.stderr.write(
      `fwdgrad: warning: ${OPTION_FLAGS[key]} does not apply to ${algo}; it is recorded but has no effect\n`,
    );
  }

  const modelOverrides: Record<string, number> = {};
  if (flags.blocks !== undefined) modelOverrides.blocks = flags.blocks;
  if (flags.channels !== undefined) {
    modelOverrides.channels = flags.channels;
    modelOverrides.hidden = flags.channels;
  }
  if (flags.groups !== undefined) modelOverrides.groups = flags.groups;
  if (flags.patches !== undefined) modelOverrides.patchesPerSide = flags.patches;

  // auto: where tfjs-node loads, it takes the large steps (NODE_MIN_STEP_WORK), native the small ones
  // (sizes that do not fit are reported below, as usage errors)
  let work: number | undefined;
  try {
    work = stepWork(resolveConfig(experiment.model, modelOverrides), experiment.batchSize);
  } catch {
    work = undefined;
  }
  const selection = await selectBackend(flags.backend, { stepWork: work });
  process.stderr.write(`${describeSelection(selection)}\n`);
  const loader = DATASETS[flags.dataset];
  const dataset: Dataset = loadDataset(loader, {
    dataDir: flags.dataDir,
    size: flags.dataset === 'folder' ? 224 : undefined,
  });

  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const runDir =
    flags.runDir ??
    join('runs', `${algo}-${experiment.model.replaceAll('/', '_')}-${flags.dataset}-${stamp}`);
  const controller = new AbortController();
  const options: TrainOptions = {
    experiment,
    algorithm: algo,
    algorithmOptions,
    modelOverrides,
    dataset,
    data: { loader, dir: flags.dataDir === undefined ? null : resolve(flags.dataDir) },
    seed: flags.seed,
    limitTrain: flags.limitTrain,
    limitTest: flags.limitTest,
    runDir,
    resume: flags.resume,
    changeLr: extra.changeLr,
    backend: selection.name,
    progressStream: flags.progress ? process.stderr : null,
    logEvery: flags.logEvery,
    plots: flags.plots,
    signal: controller.signal,
  };
  // every check on the settings before anything is written: a usage error, exit 2
  asUsageError(() => {
    modelConfigFor(experiment, dataset, modelOverrides);
    checkTrainSettings(options, dataset);
  });
  const parallelBlocks = flags.parallelBlocks;
  const restore = abortOnSignals(controller, (signal) =>
    process.stderr.write(
      parallelBlocks === undefined
        ? `\nfwdgrad: ${signal}: finishing the step and writing a checkpoint…\n`
        : `\nfwdgrad: ${signal}: finishing the micro-batches in the pipeline and writing a checkpoint…\n`,
    ),
  );
  try {
    return parallelBlocks === undefined
      ? await train(options)
      : await trainPipelined({ ...options, parallelBlocks });
  } catch (err) {
    if (err instanceof TrainingInterruptedError) {
      const code = err.reason === 'SIGTERM' ? SIGNAL_EXIT.SIGTERM : SIGNAL_EXIT.SIGINT;
      throw new CommandError(err.message, code);
    }
    throw err;
  } finally {
    restore();
  }
}
