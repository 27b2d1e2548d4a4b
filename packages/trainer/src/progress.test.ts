import { describe, expect, it } from 'vitest';
import { createProgress, formatDuration } from './progress.js';

function fakeStream(isTTY: boolean, columns?: number) {
  const chunks: string[] = [];
  return { chunks, stream: { isTTY, columns, write: (c: string) => chunks.push(c) } };
}

function fakeClock() {
  let t = 1000;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe('createProgress (issue 8 item 4)', () => {
  it('plain lines every intervalMs plus a final line when not on a terminal', () => {
    const { chunks, stream } = fakeStream(false);
    const clock = fakeClock();
    const bar = createProgress({
      total: 1000,
      label: 'epoch 1/3',
      stream,
      intervalMs: 10_000,
      now: clock.now,
    });
    clock.advance(4000);
    bar.tick(100, { loss: 2, acc: 0.1 }); // 4 s: too early
    clock.advance(6000);
    bar.tick(100, { loss: 1, acc: 0.3 }); // 10 s: print
    expect(chunks).toEqual(['epoch 1/3 200/1000 (20%) loss 1.5000 acc 20.00% 20 ex/s ETA 40s\n']);
    clock.advance(5000);
    bar.tick(300, { loss: 0.5, acc: 0.5 }); // 5 s after the last line: nothing
    expect(chunks).toHaveLength(1);
    clock.advance(5000);
    bar.tick(500, { loss: 0.5, acc: 0.5 }); // 10 s after: print
    expect(chunks).toHaveLength(2);
    expect(chunks[1]).toBe('epoch 1/3 1000/1000 (100%) loss 0.7000 acc 44.00% 50 ex/s ETA 0s\n');
    clock.advance(1000);
    const s = bar.done();
    expect(chunks[2]).toBe('epoch 1/3 1000/1000 (100%) loss 0.7000 acc 44.00% 48 ex/s in 21s\n');
    expect(chunks.every((c) => !c.includes('\r'))).toBe(true);
    expect(s.examples).toBe(1000);
    expect(s.seconds).toBe(21);
    expect(s.examplesPerSecond).toBeCloseTo(1000 / 21, 12);
    // example-weighted means: (2·100 + 1·100 + 0.5·800) / 1000
    expect(s.loss).toBeCloseTo(0.7, 12);
    expect(s.acc).toBeCloseTo(0.44, 12);
    // done() is idempotent and writes once
    expect(bar.done()).toEqual(s);
    expect(chunks).toHaveLength(3);
    expect(() => bar.tick(1)).toThrow(/is done/);
  });

  it('redraws one line in place on a terminal, with a bar', () => {
    const { chunks, stream } = fakeStream(true);
    const clock = fakeClock();
    const bar = createProgress({ total: 100, label: 'epoch 2/3', stream, redrawMs: 100, now: clock.now });
    clock.advance(1000);
    bar.tick(50, { loss: 0.25 });
    expect(chunks).toEqual([
      `\r\x1b[2Kepoch 2/3 [${'='.repeat(10)}${' '.repeat(10)}] 50/100 (50%) loss 0.2500 50 ex/s ETA 1s`,
    ]);
    clock.advance(50);
    bar.tick(10, { loss: 0.25 }); // within redrawMs: no redraw
    expect(chunks).toHaveLength(1);
    clock.advance(950);
    bar.tick(40, { loss: 0.25 });
    expect(chunks).toHaveLength(2);
    expect(chunks[1].startsWith(`\r\x1b[2Kepoch 2/3 [${'='.repeat(20)}] 100/100 (100%)`)).toBe(true);
    bar.done();
    expect(chunks[2]).toBe(
      `\r\x1b[2Kepoch 2/3 [${'='.repeat(20)}] 100/100 (100%) loss 0.2500 50 ex/s in 2s\n`,
    );
    expect(chunks.slice(0, 2).every((c) => !c.includes('\n'))).toBe(true);
  });

  it('takes isTTY from the stream and fits the terminal width', () => {
    const { chunks, stream } = fakeStream(true, 30);
    const clock = fakeClock();
    const bar = createProgress({ total: 10, label: 'a-rather-long-label', stream, now: clock.now });
    clock.advance(1000);
    bar.tick(1);
    expect(chunks[0]).toBe(`\r\x1b[2K${'a-rather-long-label [==        ] 1/10'.slice(0, 29)}`);
  });

  it('formats durations and rejects bad input', () => {
    expect(formatDuration(7.4)).toBe('7s');
    expect(formatDuration(125)).toBe('2m05s');
    expect(formatDuration(3723)).toBe('1h02m03s');
    expect(formatDuration(Number.NaN)).toBe('?');
    expect(() => createProgress({ total: -1, label: 'x' })).toThrow(/total = -1/);
    const { stream } = fakeStream(false);
    expect(() => createProgress({ total: 1, label: 'x', stream }).tick(Number.NaN)).toThrow(/tick n = NaN/);
  });
});
