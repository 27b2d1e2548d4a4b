import { describe, expect, it } from 'vitest';
import { configSizes, DEFAULT_CONFIG, PLACEMENTS, presets, resolveConfig, validateConfig } from './index.js';

describe('presets (paper Table 2)', () => {
  it('have the Table 2 sizes and the input shapes of their datasets', () => {
    const rows = Object.entries(presets).map(([name, c]) => [
      name,
      c.blocks,
      c.patchesPerSide,
      c.channels,
      c.groups,
      c.imageShape.join('x'),
      c.numClasses,
    ]);
    expect(rows).toEqual([
      ['S/1/1', 1, 1, 256, 1, '28x28x1', 10],
      ['M/1/16', 1, 1, 512, 16, '28x28x1', 10],
      ['M/8/16', 4, 8, 512, 16, '32x32x3', 10],
      ['L/8/64', 4, 8, 2048, 64, '32x32x3', 10],
      ['L/32/64', 4, 32, 2048, 64, '224x224x3', 1000],
    ]);
    for (const c of Object.values(presets)) {
      expect(c.hidden).toBe(c.channels);
      expect(c.placement).toEqual(PLACEMENTS['before+after']);
      expect(() => validateConfig(c)).not.toThrow();
    }
  });

  it('derive the REFERENCE 0 sizes', () => {
    expect(configSizes(presets['M/8/16'])).toEqual({
      numPatches: 64,
      patchSize: [4, 4],
      patchDim: 48,
      groupChannels: 32,
      groupHidden: 32,
      numLayers: 11,
    });
    expect(configSizes(presets['L/32/64']).patchDim).toBe(7 * 7 * 3);
    expect(configSizes(presets['S/1/1'])).toMatchObject({ numPatches: 1, patchDim: 784, numLayers: 2 });
  });
});

describe('resolveConfig', () => {
  it('copies a preset and applies overrides; hidden follows channels unless given', () => {
    const c = resolveConfig('M/8/16', { channels: 256, placement: 'after', norm: 'batch' });
    expect(c.channels).toBe(256);
    expect(c.hidden).toBe(256);
    expect(c.placement).toEqual({ begin: false, middle: false, postLinear: true });
    expect(c.norm).toBe('batch');
    expect(presets['M/8/16'].channels).toBe(512);
    c.imageShape[0] = 1;
    expect(presets['M/8/16'].imageShape[0]).toBe(32);
    expect(resolveConfig('M/8/16', { channels: 256, hidden: 1024 }).hidden).toBe(1024);
  });

  it('fills a partial config from the defaults', () => {
    const c = resolveConfig({ imageShape: [8, 8, 1], patchesPerSide: 2, channels: 8, groups: 2, blocks: 2 });
    expect(c).toEqual({
      ...DEFAULT_CONFIG,
      imageShape: [8, 8, 1],
      patchesPerSide: 2,
      channels: 8,
      hidden: 8,
      groups: 2,
      blocks: 2,
    });
  });

  it('maps the Table 6 placement names to the REFERENCE 2 flags', () => {
    expect(resolveConfig('M/8/16', { placement: 'begin' }).placement).toEqual({
      begin: true,
      middle: false,
      postLinear: false,
    });
    expect(resolveConfig('M/8/16', { placement: 'before' }).placement).toEqual({
      begin: true,
      middle: true,
      postLinear: false,
    });
    expect(
      resolveConfig('M/8/16', { placement: { begin: false, middle: true, postLinear: true } }).placement,
    ).toEqual({ begin: false, middle: true, postLinear: true });
  });
});

describe('bad input', () => {
  it('channels not divisible by groups lists the groups that divide them', () => {
    expect(() => resolveConfig('M/8/16', { groups: 3 })).toThrow(
      'channels 512 is not divisible by groups 3; groups that divide 512: 1, 2, 4, 8, 16, 32, 64, 128, 256, 512',
    );
    expect(() => resolveConfig('M/8/16', { hidden: 100 })).toThrow(
      'hidden 100 is not divisible by groups 16; groups that divide 100: 1, 2, 4, 5, 10, 20, 25, 50, 100',
    );
  });

  it('patches that do not tile the image list the patch counts that do', () => {
    expect(() => resolveConfig('M/8/16', { patchesPerSide: 5 })).toThrow(
      'patchesPerSide 5 does not tile a 32×32 image (32 or 32 is not divisible by 5); patch counts per side that tile it: 1, 2, 4, 8, 16, 32',
    );
    expect(() => resolveConfig('S/1/1', { patchesPerSide: 3 })).toThrow('tile it: 1, 2, 4, 7, 14, 28');
    expect(() =>
      resolveConfig({ imageShape: [12, 18, 1], patchesPerSide: 4, channels: 4, groups: 1 }),
    ).toThrow('tile it: 1, 2, 3, 6');
  });

  it('an unknown preset lists the presets', () => {
    expect(() => resolveConfig('M/4/16' as never)).toThrow(
      "unknown preset 'M/4/16'; presets: 'S/1/1', 'M/1/16', 'M/8/16', 'L/8/64', 'L/32/64'",
    );
  });

  it('unknown fields, kinds and non-positive sizes name the value and the options', () => {
    expect(() => resolveConfig('M/8/16', { channel: 3 } as never)).toThrow(
      "unknown field 'channel'; known fields:",
    );
    expect(() => resolveConfig('M/8/16', { norm: 'group' as never })).toThrow(
      `norm "group" is not supported; use one of 'local-layer', 'layer', 'batch'`,
    );
    expect(() => resolveConfig('M/8/16', { placement: 'middle' as never })).toThrow(
      "use one of 'begin', 'before', 'after', 'before+after'",
    );
    expect(() => resolveConfig('M/8/16', { blocks: 0 })).toThrow('blocks 0 must be a positive integer');
    expect(() => resolveConfig('M/8/16', { imageShape: [32, 32] as never })).toThrow(
      'imageShape [32,32] must be [height, width, channels]',
    );
  });
});

describe('constants', () => {
  it('presets and defaults cannot be changed by accident', () => {
    expect(() => {
      (presets['M/8/16'] as { channels: number }).channels = 1;
    }).toThrow();
    expect(() => {
      presets['M/8/16'].imageShape[0] = 1;
    }).toThrow();
    expect(() => {
      (presets['S/1/1'].placement as { begin: boolean }).begin = false;
    }).toThrow();
    expect(() => {
      DEFAULT_CONFIG.imageShape[0] = 1;
    }).toThrow();
    expect(presets['M/8/16'].channels).toBe(512);
  });
});
