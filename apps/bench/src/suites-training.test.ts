import { describe, expect, it } from 'vitest';
import { num, smoke } from './testing.test-util.js';

// The training suites run `train()` for real; the smoke test runs a few of their rows (--filter)
// to stay within seconds on the pure-JS cpu backend. `pnpm bench <suite> --budget smoke` runs them all.
describe('training suites at --budget smoke (cpu backend, filtered rows)', () => {
  it('table3-mnist: errors per model, algorithm and seed beside the paper numbers', async () => {
    const { file, cleanup } = await smoke('table3-mnist', { filter: ['|bp|', '|lg-fg-a|', '|readout|'] });
    expect(file.rows.map((r) => r.key)).toEqual([
      'S/1/1|bp|seed0',
      'S/1/1|lg-fg-a|seed0',
      'S/1/1|readout|seed0',
      'M/1/16|bp|seed0',
      'M/1/16|lg-fg-a|seed0',
      'M/1/16|readout|seed0',
    ]);
    for (const r of file.rows) {
      expect(r.error).toBeUndefined();
      expect(num(r.test_error, false)).toBeGreaterThanOrEqual(0);
      expect(r.test_error as number).toBeLessThanOrEqual(1);
      expect(num(r.train_error, false)).toBeLessThanOrEqual(1);
      expect(r.limit_train).toBe(256);
      expect((r.curve as unknown[]).length).toBe(1);
    }
    expect(file.rows[0].paper_test_error).toBeCloseTo(0.0266, 6);
    expect(file.rows[4].paper_test_error).toBeCloseTo(0.0255, 6);
    expect(file.rows[2].paper_test_error).toBeNull();
    const table = file.summary.table as { model: string; algo: string; seeds: number }[];
    expect(table.map((t) => `${t.model} ${t.algo} ${t.seeds}`)).toContain('M/1/16 lg-fg-a 1');
    cleanup();
  });

  it('ablations: one row of each study with its setting', async () => {
    const { file, cleanup } = await smoke('ablations', {
      filter: ['losses|all|', 'groups|G=1|bp|', 'norm|layer|lg-fg-a-ng|', 'placement|after|lg-bp|'],
    });
    expect(file.rows.map((r) => [r.ablation, r.setting, r.variant])).toEqual([
      ['losses', 'all', 'lg-fg-a'],
      ['groups', 'G=1', 'bp'],
      ['norm', 'layer', 'lg-fg-a-ng'],
      ['placement', 'after', 'lg-bp'],
    ]);
    for (const r of file.rows) {
      expect(r.error).toBeUndefined();
      num(r.test_error, false);
    }
    expect(file.rows[2].algorithm_options).toEqual({ normGradient: false });
    expect(file.rows[1].model_overrides).toMatchObject({ groups: 1 });
    expect(file.rows[1].model).toBe('mixer-b2-p2-c16-g1');
    // Table 5's CIFAR-10 number for LN, LG-FG-A (NG): 29.33 %
    expect(file.rows[2].paper_test_error).toBeCloseTo(0.2933, 6);
    cleanup();
  });

  it("contrastive: a row per rule, trained or skipped with the trainer's reason", async () => {
    const { file, cleanup } = await smoke('contrastive', { filter: ['lg-fg-a'] });
    expect(file.rows).toHaveLength(1);
    const r = file.rows[0];
    expect(r.algo).toBe('lg-fg-a');
    expect(r.error).toBeUndefined();
    if (r.skipped === undefined) {
      expect(r.objective).toBe('contrastive');
      num(r.test_error, false);
    } else {
      expect(String(r.skipped)).toMatch(/not supported|not implemented/);
    }
    expect(r.paper_test_error).toBeCloseTo(0.3288, 6);
    cleanup();
  });
});
