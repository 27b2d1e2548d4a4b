import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { arch, cpus, loadavg, platform, release, totalmem } from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { type BackendSelection, backendPackages } from '@fwdgrad/trainer/node';

/** The machine and software a result was measured on (recorded in every results file). */
export interface MachineInfo {
  cpus: number;
  cpu_model: string;
  total_memory_gib: number;
  platform: string;
  arch: string;
  os_release: string;
  node: string;
  tfjs_version: string;
  /** fwdgrad's name of the backend in use (`wasm`, `cpu`, ...). */
  backend: string;
  /** tfjs's name of it (`tf.getBackend()`). */
  tfjs_backend: string;
  /** Why other backends were not used (from `selectBackend`). */
  backend_attempts: { name: string; ok: boolean; reason?: string }[];
  /** Kernels the trainer replaced by faster equivalents on this backend (`selectBackend`'s `kernelPatches`). */
  kernel_patches: string[];
  /** Versions of the fwdgrad packages and tfjs backend packages that resolve from the bench. */
  packages: Record<string, string>;
  /** 1, 5 and 15-minute load averages when the report was written (other work on the machine skews timings). */
  load_average: number[];
  /** `git rev-parse HEAD` of the working tree when available, and whether it had local changes. */
  git_commit: string | null;
  git_dirty: boolean | null;
  /** fwdgrad's environment settings in force (`FWDGRAD_THREADS`, `FWDGRAD_NATIVE_PREFETCH`, …), which change speeds. */
  settings?: Record<string, string>;
}

const PACKAGES = [
  '@fwdgrad/jvp-core',
  '@fwdgrad/perturbation',
  '@fwdgrad/local-losses',
  '@fwdgrad/localmixer',
  '@fwdgrad/baselines-fa',
  '@fwdgrad/datasets',
  '@fwdgrad/trainer',
  '@tensorflow/tfjs',
];

function packageVersions(): Record<string, string> {
  const req = createRequire(import.meta.url);
  const out: Record<string, string> = {};
  for (const p of PACKAGES) {
    try {
      out[p] = (req(`${p}/package.json`) as { version: string }).version;
    } catch {
      // no exported package.json: leave it out
    }
  }
  // The backend packages resolve from the trainer (which loads them), not from the bench.
  for (const p of backendPackages()) if (p.version) out[p.package] = p.version;
  return out;
}

function git(args: string[]): string | null {
  try {
    const r = spawnSync('git', args, { encoding: 'utf8', timeout: 5000 });
    return r.status === 0 ? r.stdout.trim() : null;
  } catch {
    return null;
  }
}

/** Describes this machine, the active backend and the versions in use. */
export function machineInfo(selection: BackendSelection): MachineInfo {
  const cpuList = cpus();
  const commit = git(['rev-parse', 'HEAD']);
  const status = commit === null ? null : git(['status', '--porcelain']);
  return {
    cpus: cpuList.length,
    cpu_model: cpuList[0]?.model?.trim() ?? 'unknown',
    total_memory_gib: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    platform: platform(),
    arch: arch(),
    os_release: release(),
    node: process.version,
    tfjs_version: tf.version.tfjs,
    backend: selection.name,
    tfjs_backend: selection.tfjsBackend,
    backend_attempts: selection.attempts.map((a) => ({ name: a.name, ok: a.ok, reason: a.reason })),
    kernel_patches: [...((selection as { kernelPatches?: string[] }).kernelPatches ?? [])],
    packages: packageVersions(),
    load_average: loadavg().map((x) => Math.round(x * 100) / 100),
    git_commit: commit,
    git_dirty: status === null ? null : status.length > 0,
    settings: Object.fromEntries(
      Object.entries(process.env)
        .filter(([k, v]) => k.startsWith('FWDGRAD_') && v !== undefined)
        .sort(([a], [b]) => a.localeCompare(b)) as [string, string][],
    ),
  };
}

/** One line naming the machine and backend, for Markdown reports. */
export function machineLine(m: MachineInfo): string {
  return (
    `${m.cpus} × ${m.cpu_model}, ${m.total_memory_gib} GiB, ${m.platform}/${m.arch}, Node ${m.node}, ` +
    `tfjs ${m.tfjs_version}, backend ${m.backend} (tfjs '${m.tfjs_backend}')` +
    (m.kernel_patches.length > 0 ? ` with fast paths for ${m.kernel_patches.join(', ')}` : '') +
    `; load average ${m.load_average.join(' / ')} (1/5/15 min)` +
    (m.settings !== undefined && Object.keys(m.settings).length > 0
      ? `; settings ${Object.entries(m.settings)
          .map(([k, v]) => `${k}=${v}`)
          .join(' ')}`
      : '')
  );
}
