import { PRESET_EXPERIMENTS, PRESET_NAMES, PRESETS } from '@fwdgrad/trainer';
import { exportWeights, writeLearningCurves } from '@fwdgrad/trainer/node';
import { existsSync } from 'node:fs';
import type { Command } from 'commander';

/** `fwdgrad presets`: each preset, its paper experiment and hyper-parameters. */
function presets(flags: { json?: boolean }): void {
  if (flags.json) {
    for (const name of PRESET_NAMES) {
      console.log(JSON.stringify({ name, experiment: PRESET_EXPERIMENTS[name], ...PRESETS[name] }));
    }
    return;
  }
  for (const name of PRESET_NAMES) {
    const p = PRESETS[name];
    const aug =
      p.augmentation.kind === 'byol'
        ? `byol (crop area ≥ ${p.augmentation.areaLowerBound})`
        : p.augmentation.kind;
    console.log(`${name}: ${PRESET_EXPERIMENTS[name]}`);
    console.log(
      `  ${p.dataset} ${p.model} ${p.objective}; ${p.epochs} epochs, batch ${p.batchSize}, ${p.optimizer} lr ${p.lr}` +
        `${p.lrScaling === 'linear' ? ' × batch/256' : ''}, momentum ${p.momentum}, weight decay ${p.weightDecay}, ` +
        `${p.schedule}${p.warmupEpochs > 0 ? ` (${p.warmupEpochs} warm-up epochs)` : ''}, head lr × ${p.headLr}, ` +
        `last layer lr × ${p.lastLayerLr}, augmentation ${aug}`,
    );
  }
}

export function registerRunTools(program: Command): void {
  program
    .command('presets')
    .description("list the experiment presets: the paper's experiments and their hyper-parameters")
    .option('--json', 'one JSON object per preset')
    .action(presets);

  program
    .command('plot')
    .description('draw learning curves (loss.svg, error.svg) of a run folder, optionally against others')
    .requiredOption('--run <dir>', 'run folder written by fwdgrad train')
    .option('--compare <dirs...>', 'more run folders to draw beside it')
    .option('--out <dir>', 'where to write the SVG files (default: the --run folder)')
    .action((flags: { run: string; compare?: string[]; out?: string }) => {
      const runs = [flags.run, ...(flags.compare ?? [])];
      for (const dir of runs) {
        if (!existsSync(dir)) throw new Error(`the run folder ${dir} does not exist`);
        if (!existsSync(`${dir}/metrics.jsonl`)) {
          throw new Error(`${dir} has no metrics.jsonl yet (no epoch finished): nothing to plot`);
        }
      }
      for (const file of writeLearningCurves(flags.out ?? flags.run, runs)) console.log(file);
    });

  program
    .command('export')
    .description(
      "export a run's newest checkpoint in TensorFlow.js's weights format (model.json + .bin shards)",
    )
    .requiredOption('--run <dir>', 'run folder written by fwdgrad train')
    .requiredOption('--out <dir>', 'folder to write model.json, the shards and localmixer.json into')
    .action(async (flags: { run: string; out: string }) => {
      const written = await exportWeights(flags.run, flags.out);
      for (const file of [written.modelJson, ...written.shards, written.config]) console.log(file);
    });
}
