import { existsSync } from 'node:fs';
import { positiveInt } from '@fwdgrad/cli-kit';
import { loadDataset } from '@fwdgrad/datasets/node';
import type { LocalMixerConfig } from '@fwdgrad/localmixer';
import { createModel, evaluateError } from '@fwdgrad/trainer';
import {
  type BackendRequest,
  type CheckpointExtra,
  describeSelection,
  loadLatestCheckpoint,
  readConfig,
  selectBackend,
} from '@fwdgrad/trainer/node';
import * as tf from '@tensorflow/tfjs';
import type { Command, Option } from 'commander';

interface EvalFlags {
  run: string;
  dataDir?: string;
  limitTest?: number;
  train?: boolean;
  backend: BackendRequest;
  json?: boolean;
}

interface SavedRun {
  experiment: { dataset: string; model: string };
  algorithm: string;
  model: LocalMixerConfig;
  seed: number;
  /** Recorded since checkpoints carry their settings; older runs name only the preset's dataset. */
  data?: { loader: string; dir: string | null };
}

const LOADER: Record<string, string> = { mnist: 'mnist', cifar10: 'cifar10', imagenet: 'image-folder' };

export function registerEval(program: Command, backendOption: () => Option): void {
  program
    .command('eval')
    .description('evaluate the newest checkpoint of a run folder (test error, optionally train error)')
    .requiredOption('--run <dir>', 'run folder written by fwdgrad train')
    .option('--data-dir <dir>', "dataset folder (default: the run's own)")
    .option('--limit-test <n>', 'evaluate on the first N test examples', positiveInt('--limit-test'))
    .option('--train', 'also compute the train error')
    .addOption(backendOption())
    .option('--json', 'print one JSON object')
    .action(async (flags: EvalFlags) => {
      if (!existsSync(flags.run)) throw new Error(`the run folder ${flags.run} does not exist; check --run`);
      const ckpt = loadLatestCheckpoint(flags.run);
      const saved = (ckpt?.extra as Partial<CheckpointExtra> | null)?.run ?? readConfig<SavedRun>(flags.run);
      if (saved === null) {
        throw new Error(
          `${flags.run} has no config.json and no checkpoint; is it a run folder written by fwdgrad train?`,
        );
      }
      if (ckpt === null) throw new Error(`${flags.run} has no checkpoint yet (no epoch finished)`);
      const sel = await selectBackend(flags.backend);
      if (!flags.json) console.log(describeSelection(sel));
      const source = saved.data ?? {
        loader: LOADER[saved.experiment.dataset] ?? saved.experiment.dataset,
        dir: null,
      };
      const ds = loadDataset(source.loader, {
        dataDir: flags.dataDir ?? source.dir ?? undefined,
        size: saved.model.imageShape[0],
      });
      const model = createModel(saved.model, saved.seed);
      try {
        for (const e of model.entries) {
          const v = ckpt.params[e.name];
          if (v === undefined) throw new Error(`checkpoint ${ckpt.file} has no parameter '${e.name}'`);
          e.variable.assign(v);
        }
        const testError = evaluateError(model, ds, ds.test, flags.limitTest);
        const trainError = flags.train ? evaluateError(model, ds, ds.train) : null;
        const report = {
          run_dir: flags.run,
          checkpoint: ckpt.file,
          epoch: ckpt.epoch,
          algo: saved.algorithm,
          model: saved.experiment.model,
          dataset: ds.name,
          test_error: testError,
          train_error: trainError,
          backend: sel.name,
        };
        if (flags.json) console.log(JSON.stringify(report));
        else {
          console.log(
            `${flags.run} (epoch ${ckpt.epoch}, ${saved.algorithm}, ${saved.experiment.model}, ${ds.name})`,
          );
          console.log(`test error ${(100 * testError).toFixed(2)}%`);
          if (trainError !== null) console.log(`train error ${(100 * trainError).toFixed(2)}%`);
        }
      } finally {
        model.dispose();
        tf.dispose([...Object.values(ckpt.params), ...Object.values(ckpt.optimizer)]);
      }
    });
}
