import { ALGORITHM_IDS, type AlgorithmId } from '@fwdgrad/trainer';

/** The models the page trains: the paper's MNIST networks and a narrowed M/8/16 that fits a browser. */
export const MODELS = {
  'S/1/1': { preset: 'mnist-s11', model: 'S/1/1', overrides: {} },
  'M/1/16': { preset: 'mnist-m116', model: 'M/1/16', overrides: {} },
  'M/8/16': { preset: 'mnist-m116', model: 'M/8/16', overrides: { channels: 128, hidden: 512 } },
} as const;
export type ModelName = keyof typeof MODELS;

/** tfjs backends in the order the page falls back through them. */
export const BACKENDS = ['webgpu', 'webgl', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKENDS)[number];

/** One training request: the form's fields, or the query string of the scriptable contract. */
export interface RunOptions {
  algo: AlgorithmId;
  /** A second rule trained after the first, its curves overlaid (e.g. lg-fg-a against bp). */
  compare: AlgorithmId | null;
  model: ModelName;
  backend: BackendName;
  epochs: number;
  batchSize: number;
  /** Learning rate; null = the preset's (0.01, appendix 11). */
  lr: number | null;
  seed: number;
  limitTrain: number;
  limitTest: number;
  autorun: boolean;
}

export const DEFAULTS: RunOptions = {
  algo: 'lg-fg-a',
  compare: null,
  model: 'S/1/1',
  backend: 'webgl',
  epochs: 1,
  batchSize: 64,
  lr: null,
  seed: 0,
  limitTrain: 10000,
  limitTest: 2000,
  autorun: false,
};

function oneOf<T extends string>(name: string, value: string, choices: readonly T[]): T {
  if (!(choices as readonly string[]).includes(value)) {
    throw new Error(`${name}=${value} is not valid: choose one of ${choices.join(', ')}.`);
  }
  return value as T;
}

function whole(name: string, value: string, min: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min)
    throw new Error(`${name}=${value} is not valid: expected a whole number ≥ ${min}.`);
  return n;
}

/**
 * Reads run options from a query string (`?autorun=1&backend=webgl&algo=lg-fg-a&model=S/1/1&limit-train=2000&
 * limit-test=1000&epochs=1&batch-size=64&seed=0`, plus `lr` and `compare`). Unknown keys and bad values are
 * errors that name the key and the valid values.
 */
export function parseQuery(search: string): RunOptions {
  const q = new URLSearchParams(search);
  const o: RunOptions = { ...DEFAULTS };
  for (const [key, value] of q) {
    switch (key) {
      case 'algo':
        o.algo = oneOf(key, value, ALGORITHM_IDS);
        break;
      case 'compare':
        o.compare = value === '' ? null : oneOf(key, value, ALGORITHM_IDS);
        break;
      case 'model':
        o.model = oneOf(key, value, Object.keys(MODELS) as ModelName[]);
        break;
      case 'backend':
        o.backend = oneOf(key, value, BACKENDS);
        break;
      case 'epochs':
        o.epochs = whole(key, value, 1);
        break;
      case 'batch-size':
        o.batchSize = whole(key, value, 1);
        break;
      case 'lr': {
        const lr = Number(value);
        if (!(lr > 0) || !Number.isFinite(lr))
          throw new Error(`lr=${value} is not valid: expected a number > 0.`);
        o.lr = lr;
        break;
      }
      case 'seed':
        o.seed = whole(key, value, 0);
        break;
      case 'limit-train':
        o.limitTrain = whole(key, value, 1);
        break;
      case 'limit-test':
        o.limitTest = whole(key, value, 1);
        break;
      case 'autorun':
        o.autorun = value === '1' || value === 'true';
        break;
      default:
        throw new Error(
          `unknown query key '${key}': the keys are autorun, backend, algo, compare, model, epochs, batch-size, lr, ` +
            'seed, limit-train, limit-test.',
        );
    }
  }
  if (o.batchSize > o.limitTrain) {
    throw new Error(
      `batch-size=${o.batchSize} is larger than limit-train=${o.limitTrain}: lower one or raise the other.`,
    );
  }
  return o;
}

/** The query string of a request (the inverse of {@link parseQuery}, defaults left out). */
export function toQuery(o: RunOptions): string {
  const q = new URLSearchParams();
  if (o.autorun) q.set('autorun', '1');
  q.set('backend', o.backend);
  q.set('algo', o.algo);
  if (o.compare !== null) q.set('compare', o.compare);
  q.set('model', o.model);
  q.set('limit-train', String(o.limitTrain));
  q.set('limit-test', String(o.limitTest));
  q.set('epochs', String(o.epochs));
  q.set('batch-size', String(o.batchSize));
  if (o.lr !== null) q.set('lr', String(o.lr));
  q.set('seed', String(o.seed));
  return `?${q.toString().replaceAll('%2F', '/')}`;
}
