import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { loadLatestCheckpoint, readConfig } from './checkpoint.js';
import type { CheckpointExtra, RunConfig } from './run.js';

/** Shard size of the exported weights, as tfjs's own converters write them. */
const SHARD_BYTES = 4 * 1024 * 1024;

/** What {@link exportWeights} wrote. */
export interface ExportedWeights {
  /** `model.json`: the tfjs weights manifest, the model configuration in `userDefinedMetadata`. */
  modelJson: string;
  /** The `.bin` shards. */
  shards: string[];
  /** `localmixer.json`: the model configuration, rule, epoch and source checkpoint. */
  config: string;
}

/**
 * Exports the newest checkpoint of a run folder in TensorFlow.js's weights format: `model.json`
 * (`weightsManifest` + 4 MiB `.bin` shards, loadable with `tf.io.loadWeights`, or
 * `tf.io.http(url).load()` + `tf.io.decodeWeights`) and `localmixer.json` (the LocalMixer
 * configuration the weights belong to, e.g. for `createModel` + `assignParams`). Weight names are
 * the model's parameter names (`backbone.0.w`, `classifier.b`, …).
 */
export async function exportWeights(runDir: string, outDir: string): Promise<ExportedWeights> {
  if (!fs.existsSync(runDir)) throw new Error(`the run folder ${runDir} does not exist; check --run`);
  const ckpt = loadLatestCheckpoint(runDir);
  if (ckpt === null)
    throw new Error(`${runDir} has no checkpoint yet (no epoch finished): nothing to export`);
  try {
    const run = (ckpt.extra as Partial<CheckpointExtra> | null)?.run ?? readConfig<RunConfig>(runDir);
    if (run === null) throw new Error(`${runDir} has neither settings in its checkpoint nor a config.json`);
    const names = Object.keys(ckpt.params);
    const { data, specs } = await tf.io.encodeWeights(ckpt.params);
    const bytes = new Uint8Array(data);
    fs.mkdirSync(outDir, { recursive: true });
    const count = Math.max(1, Math.ceil(bytes.byteLength / SHARD_BYTES));
    const paths: string[] = [];
    const shards: string[] = [];
    for (let i = 0; i < count; i++) {
      const name = `group1-shard${i + 1}of${count}.bin`;
      const file = path.join(outDir, name);
      fs.writeFileSync(
        file,
        bytes.subarray(i * SHARD_BYTES, Math.min(bytes.byteLength, (i + 1) * SHARD_BYTES)),
      );
      paths.push(name);
      shards.push(file);
    }
    const metadata = {
      localmixer: run.model,
      algorithm: run.algorithm,
      experiment: run.experiment,
      epoch: ckpt.epoch,
      step: ckpt.step,
      checkpoint: path.basename(ckpt.file),
      parameters: names,
    };
    const modelJson = path.join(outDir, 'model.json');
    fs.writeFileSync(
      modelJson,
      `${JSON.stringify(
        {
          format: 'fwdgrad-localmixer',
          generatedBy: `TensorFlow.js v${tf.version.tfjs}`,
          convertedBy: 'fwdgrad export',
          weightsManifest: [{ paths, weights: specs }],
          userDefinedMetadata: metadata,
        },
        null,
        2,
      )}\n`,
    );
    const config = path.join(outDir, 'localmixer.json');
    fs.writeFileSync(config, `${JSON.stringify(metadata, null, 2)}\n`);
    return { modelJson, shards, config };
  } finally {
    tf.dispose([...Object.values(ckpt.params), ...Object.values(ckpt.optimizer)]);
  }
}
