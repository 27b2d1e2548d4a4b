import { describe, expect, it } from 'vitest';
import { algorithmOrder } from './suites/throughput.js';
import { closeRel, num, smoke } from './testing.test-util.js';

describe('performance suites at --budget smoke (cpu backend)', () => {
  it('fused: naive vs fused rows with shape, op, bytes and times; fused uses less memory', async () => {
    const { file, cleanup } = await smoke('fused');
    expect(file.rows).toHaveLength(8); // G = 1, 2, 4 for jvp and grad, plus InfoNCE jvp and grad
    for (const r of file.rows) {
      expect(r.error).toBeUndefined();
      expect(typeof r.shape).toBe('string');
      expect(['jvp', 'grad']).toContain(r.op);
      const naive = num(r.naive_bytes);
      const fused = num(r.fused_bytes);
      num(r.naive_ms);
      num(r.fused_ms);
      // engine bytes are deterministic: the naive replicas are larger at every G, even G = 1
      expect(naive).toBeGreaterThan(fused);
      closeRel(r.memory_ratio, naive / fused);
      expect(String(r.note)).toMatch(/reduced at budget smoke/);
    }
    expect(file.rows.filter((r) => r.loss === 'infonce').map((r) => r.op)).toEqual(['jvp', 'grad']);
    expect((file.summary.checks as unknown[]).length).toBe(2);
    cleanup();
  });

  it('throughput: every algorithm on the three models, LG-BP first, ratios to LG-BP', async () => {
    const { file, cleanup } = await smoke('throughput');
    expect(file.rows).toHaveLength(3 * algorithmOrder().length);
    for (const r of file.rows) {
      expect(r.error).toBeUndefined();
      expect(['S/1/1', 'M/1/16', 'M/8/16']).toContain(r.model);
      expect(r.backend).toBe('cpu');
      expect(r.batch).toBe(4);
      const ms = num(r.ms_per_step);
      expect(num(r.examples_per_second)).toBeCloseTo((4 * 1000) / ms, 0);
      if (r.algo === 'lg-bp') expect(r.ratio_to_lg_bp).toBe(1);
      else {
        // other rules are timed in turns with LG-BP in the same row: the ratio is the median of the
        // per-round ratios, inside their quartiles
        const [q1, q3] = r.ratio_quartiles as number[];
        const ratio = num(r.ratio_to_lg_bp);
        expect(q1).toBeLessThanOrEqual(ratio + 1e-3);
        expect(ratio).toBeLessThanOrEqual(q3 + 1e-3);
        expect(num(r.lg_bp_ms_paired)).toBeGreaterThan(0);
      }
    }
    expect(new Set(file.rows.map((r) => r.algo)).size).toBe(algorithmOrder().length);
    cleanup();
  });

  it('backends: native and node timed in turns, or the reason one of them does not load', async () => {
    const { file, cleanup } = await smoke('backends');
    expect(file.rows).toHaveLength(1);
    const [r] = file.rows;
    expect(r.model).toBe('M/1/16');
    expect(r.algo).toBe('lg-fg-a');
    if (r.error !== undefined) {
      // node (or native) not loadable here: the row says which and why
      expect(String(r.error)).toMatch(/backend '(node|native)' could not be loaded/);
    } else {
      const [q1, q3] = r.speedup_quartiles as number[];
      const speedup = num(r.speedup);
      expect(q1).toBeLessThanOrEqual(speedup + 1e-3);
      expect(speedup).toBeLessThanOrEqual(q3 + 1e-3);
      expect(num(r.examples_per_second_native)).toBeCloseTo((4 * 1000) / num(r.ms_native), 0);
      expect(num(r.cpu_ms_node)).toBeGreaterThanOrEqual(0); // CPU time is counted in ticks: 0 for tiny steps
    }
    cleanup();
  });

  it('pipeline: one stage on 1 and 2 threads, 2 stages, projections from per-block times', async () => {
    const { file, cleanup } = await smoke('pipeline');
    const measured = file.rows.filter((r) => r.projection === false);
    expect(measured.map((r) => `${r.stages}x${r.threads_per_stage}`)).toEqual(['1x1', '1x2', '2x1']);
    for (const r of file.rows) {
      expect(r.error).toBeUndefined();
      expect(r.suite).toBe('pipeline');
      expect(r.model).toBe('M/8/16');
      expect(r.algo).toBe('lg-fg-a');
      expect(r.batch).toBe(4);
      num(r.examples_per_second);
      num(r.speedup);
      expect((r.stage_ms as number[]).length).toBe(r.stages);
    }
    expect(measured[0].speedup).toBe(1);
    const projections = file.rows.filter((r) => r.projection === true);
    expect(projections.map((r) => r.stages)).toEqual([2, 8]);
    for (const p of projections) {
      expect(String(p.note)).toMatch(/^projection, not a measurement/);
      // Σ block times ÷ the slowest stage: between 1 and the number of stages
      expect(num(p.speedup)).toBeGreaterThanOrEqual(1);
      expect(num(p.speedup)).toBeLessThanOrEqual(num(p.stages));
    }
    cleanup();
  });

  it('variance: five estimators per (N, p, q) point with empirical and theoretical variance', async () => {
    const { file, cleanup } = await smoke('variance');
    // 3 batch sizes + 3 fan-ins + 3 fan-outs, (N=4, p=q=4) shared by all three sweeps: 7 points
    expect(file.rows).toHaveLength(7 * 5);
    for (const r of file.rows) {
      num(r.empirical);
      if (r.estimator !== 'backprop' || (r.sweeps as string[]).includes('batch')) {
        // Table 1 holds in expectation; 200 samples keep the empirical value within a factor 2
        expect(num(r.empirical) / num(r.theory)).toBeGreaterThan(0.5);
        expect(num(r.empirical) / num(r.theory)).toBeLessThan(2);
      } else {
        expect(r.theory).toBeNull();
      }
    }
    cleanup();
  });
});
