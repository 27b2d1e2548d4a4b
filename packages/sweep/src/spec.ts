import { parse as parseYaml } from 'yaml';

/** A scalar value of a `train` flag in a sweep spec. */
export type FlagValue = string | number | boolean;

/**
 * A sweep spec: keys are `train` flags without the dashes (`algo`, `model`, `lr`, `seed`,
 * `limit-train`, …); an array is a grid axis, a scalar is the same for every run. Key order is
 * the nesting order: the first axis varies slowest, so `seed` first runs seed 0 of every cell
 * before any seed 1.
 */
export type SweepSpec = Record<string, FlagValue | FlagValue[]>;

/** One run of a sweep: a point of the grid. */
export interface SweepJob {
  /** The run folder's name under the root: the grid values, `key=value` joined by commas. */
  name: string;
  /** Every flag of this run (fixed values and this point's grid values), in spec order. */
  values: Record<string, FlagValue>;
  /** The grid values only (the axes), in spec order. */
  axes: Record<string, FlagValue>;
  /** The train command's flags for these values (without `--run-dir`, `--resume`, `--json`). */
  args: string[];
}

/** Flags the runner sets itself; a spec must not. */
export const RUNNER_FLAGS = ['run-dir', 'resume', 'json', 'progress', 'no-progress'] as const;

/**
 * Parses a spec's text, JSON or YAML by the file name's extension (`.yaml`/`.yml` are YAML, anything
 * else JSON), and validates it. `name` appears in messages. Reading the file is `loadSpec`
 * (`@fwdgrad/sweep/node`).
 */
export function parseSpec(text: string, name: string): SweepSpec {
  const lower = name.toLowerCase();
  const yaml = lower.endsWith('.yaml') || lower.endsWith('.yml');
  let data: unknown;
  try {
    data = yaml ? parseYaml(text) : JSON.parse(text);
  } catch (err) {
    throw new Error(`sweep spec ${name} is not valid ${yaml ? 'YAML' : 'JSON'}: ${(err as Error).message}`);
  }
  return validateSpec(data, name);
}

/** Checks that `data` is a spec: an object of scalars and non-empty arrays of scalars. */
export function validateSpec(data: unknown, where = 'sweep spec'): SweepSpec {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new Error(
      `${where} must be an object of train flags (e.g. {"algo": ["bp", "lg-fg-a"], "seed": [0, 1]})`,
    );
  }
  const spec: SweepSpec = {};
  for (const [key, value] of Object.entries(data)) {
    if (key.startsWith('-')) {
      throw new Error(`${where}: write flag '${key}' without the dashes ('${key.replace(/^-+/, '')}')`);
    }
    if ((RUNNER_FLAGS as readonly string[]).includes(key)) {
      throw new Error(`${where}: '${key}' is set by the sweep runner; remove it from the spec`);
    }
    const values = Array.isArray(value) ? value : [value];
    if (Array.isArray(value) && value.length === 0) {
      throw new Error(`${where}: '${key}' is an empty list; give at least one value or remove it`);
    }
    for (const v of values) {
      if (typeof v !== 'string' && typeof v !== 'boolean' && !(typeof v === 'number' && Number.isFinite(v))) {
        throw new Error(
          `${where}: '${key}' must be a string, number or boolean, or a list of them; got ${JSON.stringify(v)}`,
        );
      }
    }
    spec[key] = value as FlagValue | FlagValue[];
  }
  return spec;
}

/** The train flags of one set of values: `--key value`; `true` → `--key`, `false` → `--no-key`. */
export function flagArgs(values: Record<string, FlagValue>): string[] {
  const args: string[] = [];
  for (const [key, v] of Object.entries(values)) {
    if (v === true) args.push(`--${key}`);
    else if (v === false) args.push(key.startsWith('no-') ? `--${key.slice(3)}` : `--no-${key}`);
    else args.push(`--${key}`, String(v));
  }
  return args;
}

/** A folder-safe form of a value (`M/1/16` → `M_1_16`). */
function safe(v: FlagValue): string {
  return String(v).replace(/[^A-Za-z0-9._+-]+/g, '_');
}

/**
 * Expands a spec into its runs, first axis slowest. Run folder names come from the grid values
 * (`seed=0,algo=bp,model=S_1_1`); a spec without axes is one run named `run`.
 */
export function expandGrid(spec: SweepSpec): SweepJob[] {
  const keys = Object.keys(spec);
  const axisKeys = keys.filter((k) => Array.isArray(spec[k]));
  let points: Record<string, FlagValue>[] = [{}];
  for (const k of axisKeys) {
    const next: Record<string, FlagValue>[] = [];
    for (const p of points) for (const v of spec[k] as FlagValue[]) next.push({ ...p, [k]: v });
    points = next;
  }
  const seen = new Map<string, Record<string, FlagValue>>();
  return points.map((axes) => {
    const values: Record<string, FlagValue> = {};
    for (const k of keys) values[k] = Array.isArray(spec[k]) ? axes[k] : (spec[k] as FlagValue);
    const name = axisKeys.length === 0 ? 'run' : axisKeys.map((k) => `${k}=${safe(axes[k])}`).join(',');
    const clash = seen.get(name);
    if (clash !== undefined) {
      throw new Error(
        `sweep spec: grid points ${JSON.stringify(clash)} and ${JSON.stringify(axes)} give the same run folder '${name}'; make the values differ in letters or digits`,
      );
    }
    seen.set(name, axes);
    return { name, values, axes, args: flagArgs(values) };
  });
}
