import { describe, expect, it } from 'vitest';
import { type MachineInfo, machineLine } from './machine.js';

describe('machineLine', () => {
  it("names fwdgrad's environment settings when any are set (they change speeds)", () => {
    const m: MachineInfo = {
      cpus: 2,
      cpu_model: 'cpu',
      total_memory_gib: 8,
      platform: 'linux',
      arch: 'x64',
      os_release: '6',
      node: 'v20',
      tfjs_version: '4.22.0',
      backend: 'native',
      tfjs_backend: 'cpu',
      backend_attempts: [],
      kernel_patches: [],
      packages: {},
      load_average: [1, 1, 1],
      git_commit: null,
      git_dirty: null,
    };
    expect(machineLine(m)).not.toMatch(/settings/);
    const line = machineLine({ ...m, settings: { FWDGRAD_NATIVE_PREFETCH: '0', FWDGRAD_THREADS: '1' } });
    expect(line).toMatch(/; settings FWDGRAD_NATIVE_PREFETCH=0 FWDGRAD_THREADS=1$/);
  });
});
