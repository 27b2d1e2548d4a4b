import { spawnSync } from 'node:child_process';
import {
  accessSync,
  constants,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { basename, delimiter, dirname, join, resolve } from 'node:path';
import { backendPackages, cudaAvailable } from '@fwdgrad/trainer/node';
import type { Command } from 'commander';
import { extractZip, readZipText } from './wheel.js';

/**
 * `fwdgrad setup tensorflow`: the `node` (and `node-gpu`) backend where tfjs-node's own install fails.
 * @tensorflow/tfjs-node 4.22 downloads libtensorflow 2.9.1 (CUDA 11.2 for the GPU build) from a storage
 * host at install; behind a firewall, offline, or with CUDA 12 that fails and the package never loads.
 * PyPI's TensorFlow wheels carry the same C API in `tensorflow/libtensorflow_cc.so.2` (with
 * `libtensorflow_framework.so.2` and the C headers), so the addon builds against them: the node-gyp that
 * npm bundles, the Node headers already on the machine (`--nodedir`, nothing downloaded), libtensorflow
 * linked under the names tfjs-node's binding.gyp and install script expect.
 */

/** The TensorFlow release whose wheel is used (its C API is what tfjs-node 4.22's binding calls). */
export const TENSORFLOW_VERSION = '2.21.0';

export interface SetupTensorflowOptions {
  /** Build @tensorflow/tfjs-node-gpu against the `tensorflow` wheel and NVIDIA's CUDA 12 pip wheels. */
  gpu?: boolean;
  /** A TensorFlow wheel already on disk (else pip downloads one into the cache). */
  wheel?: string;
  /** Where wheels and extracted libraries are kept (default: $XDG_CACHE_HOME or ~/.cache, /fwdgrad/tensorflow). */
  cache?: string;
  /** Rebuild even when the package already loads. */
  force?: boolean;
  /** Progress lines. */
  log?: (line: string) => void;
  /** The environment to look for tools in (default: process.env). */
  env?: NodeJS.ProcessEnv;
}

export interface SetupTensorflowResult {
  package: string;
  /** The package's folder (where the addon was built). */
  dir: string;
  /** The addon file tfjs-node loads. */
  binding: string;
  /** TF_Version() of the loaded library. */
  tensorflowVersion: string;
  /** False when the package already loaded and nothing was done. */
  built: boolean;
  /** The folder with the extracted libraries and headers (undefined when nothing was done). */
  libraries?: string;
  /** For --gpu: whether TensorFlow sees a GPU. */
  gpuDevice?: boolean;
}

/** The tools the build needs, where found. */
export interface Toolchain {
  pip?: string[];
  cxx?: string;
  make?: string;
  python?: string;
  nodeGyp?: string;
  nodeDir?: string;
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return lstatSync(path).isFile() || lstatSync(realpathSync(path)).isFile();
  } catch {
    return false;
  }
}

/** `name` on env.PATH (or `name` itself when it is a path), like `which`. */
export function which(name: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (name.includes('/')) return executable(name) ? resolve(name) : undefined;
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (dir.length === 0) continue;
    const candidate = join(dir, name);
    if (executable(candidate)) return candidate;
  }
  return undefined;
}

/** Folders that may hold Node's headers as node-gyp's --nodedir wants them (include/node/...). */
function nodeDirCandidates(env: NodeJS.ProcessEnv): string[] {
  const fromEnv = [env.FWDGRAD_NODEDIR, env.npm_config_nodedir].filter((d): d is string => !!d);
  // official tarballs and nvm: <prefix>/bin/node with <prefix>/include/node; Debian's nodejs: /usr
  return [...fromEnv, dirname(dirname(process.execPath)), '/usr', '/usr/local'];
}

function isNodeDir(dir: string): boolean {
  return ['node_api.h', 'common.gypi'].every((f) => existsSync(join(dir, 'include', 'node', f)));
}

/** npm's own node-gyp (npm bundles it), next to the npm on PATH or the one installed beside node. */
function nodeGypCandidates(env: NodeJS.ProcessEnv): string[] {
  const out: string[] = [];
  const npm = which('npm', env);
  if (npm !== undefined) {
    // <npm>/bin/npm-cli.js → <npm>/node_modules/node-gyp
    out.push(join(dirname(dirname(realpathSync(npm))), 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  }
  const prefix = dirname(dirname(process.execPath));
  out.push(join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  return out;
}

function pipCommand(python: string | undefined, env: NodeJS.ProcessEnv): string[] | undefined {
  if (python !== undefined) {
    const r = spawnSync(python, ['-m', 'pip', '--version'], { encoding: 'utf8', env, timeout: 30_000 });
    if (r.status === 0) return [python, '-m', 'pip'];
  }
  const pip = which('pip3', env) ?? which('pip', env);
  return pip === undefined ? undefined : [pip];
}

/** Looks for the tools the build needs; nothing is run except `python3 -m pip --version`. */
export function findToolchain(env: NodeJS.ProcessEnv = process.env): Toolchain {
  const python = which('python3', env) ?? which('python', env);
  const cxx = [env.CXX, 'c++', 'g++', 'clang++']
    .filter((c): c is string => !!c)
    .map((c) => which(c, env))
    .find((c) => c !== undefined);
  return {
    python,
    pip: pipCommand(python, env),
    cxx,
    make: which('make', env),
    nodeGyp: nodeGypCandidates(env).find((p) => existsSync(p)),
    nodeDir: nodeDirCandidates(env).find(isNodeDir),
  };
}

/** One line per missing prerequisite, each saying what to install. Empty when the build can run. */
export function missingPrerequisites(
  tools: Toolchain,
  need: { pip: boolean; gpu: boolean; nvidiaDriver?: boolean },
  env: NodeJS.ProcessEnv = process.env,
): string[] {
  const missing: string[] = [];
  if (need.pip && tools.pip === undefined) {
    missing.push(
      `pip: not found; install it (Debian/Ubuntu: apt-get install python3-pip) or pass --wheel FILE with a ` +
        `${need.gpu ? 'tensorflow' : 'tensorflow-cpu'} ${TENSORFLOW_VERSION} wheel for Linux x86_64`,
    );
  }
  if (tools.cxx === undefined) {
    missing.push(
      `C++ compiler: not found (looked for ${env.CXX ? `$CXX (${env.CXX}), ` : ''}c++, g++, clang++); ` +
        'install one (Debian/Ubuntu: apt-get install g++)',
    );
  }
  if (tools.make === undefined)
    missing.push('make: not found; install it (Debian/Ubuntu: apt-get install make)');
  if (tools.python === undefined) {
    missing.push(
      'python3: not found (node-gyp runs gyp with it); install it (Debian/Ubuntu: apt-get install python3)',
    );
  }
  if (tools.nodeGyp === undefined) {
    missing.push(
      `node-gyp: not found where npm keeps it (${nodeGypCandidates(env).join(', ')}); install npm, which ` +
        'bundles it (Debian/Ubuntu: apt-get install npm)',
    );
  }
  if (tools.nodeDir === undefined) {
    missing.push(
      `Node.js headers for node ${process.version}: not found (looked for include/node/node_api.h and ` +
        `common.gypi under ${nodeDirCandidates(env).join(', ')}); install them (Debian/Ubuntu: apt-get ` +
        'install libnode-dev, or the nodejs package from NodeSource, which includes them) or set ' +
        'FWDGRAD_NODEDIR to the folder that holds include/node',
    );
  }
  if (need.gpu && !(need.nvidiaDriver ?? cudaAvailable())) {
    missing.push(
      'NVIDIA driver: not found (--gpu needs an NVIDIA GPU and its driver; `nvidia-smi -L` must list it); ' +
        'install the driver, or run without --gpu for the CPU build',
    );
  }
  return missing;
}

function defaultCache(env: NodeJS.ProcessEnv): string {
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'fwdgrad', 'tensorflow');
}

/** The cached wheel whose file name starts with `prefix`, newest name last. */
function cachedWheel(dir: string, prefix: string): string | undefined {
  if (!existsSync(dir)) return undefined;
  const found = readdirSync(dir)
    .filter((f) => f.startsWith(prefix) && f.endsWith('.whl'))
    .sort();
  return found.length > 0 ? join(dir, found[found.length - 1]) : undefined;
}

/** A distribution name as wheel file names spell it (PEP 427: runs of -_. become _). */
function wheelName(project: string): string {
  return project.replace(/[-_.]+/g, '_');
}

function pipDownload(pip: string[], dest: string, specs: string[], env: NodeJS.ProcessEnv): void {
  mkdirSync(dest, { recursive: true });
  const args = [...pip.slice(1), 'download', '--no-deps', '--only-binary=:all:', '--dest', dest, ...specs];
  const r = spawnSync(pip[0], args, { stdio: ['ignore', 'inherit', 'inherit'], env });
  if (r.status !== 0) {
    throw new Error(
      `pip download ${specs.join(' ')} failed (exit ${r.status ?? r.signal}); check that PyPI is reachable ` +
        'or pass --wheel FILE',
    );
  }
}

/** The CUDA 12 wheels the `tensorflow` wheel asks for with its `and-cuda` extra (from its METADATA). */
export function cudaRequirements(metadata: string): string[] {
  const specs: string[] = [];
  for (const line of metadata.split('\n')) {
    const m = /^Requires-Dist:\s*([^;]+);\s*extra\s*==\s*["']and-cuda["']/.exec(line.trim());
    if (m) specs.push(m[1].replace(/[\s()]/g, ''));
  }
  return specs;
}

const HEADER_DIRS = ['tensorflow/c/', 'tensorflow/core/platform/', 'tsl/', 'xla/tsl/c/', 'xla/tsl/platform/'];
const TF_LIBRARIES = ['libtensorflow_cc.so.2', 'libtensorflow_framework.so.2'];

/** Where a member of the TensorFlow wheel goes in the extracted folder (only what the build needs). */
export function tensorflowMember(name: string): string | undefined {
  const lib = TF_LIBRARIES.find((l) => name === `tensorflow/${l}`);
  if (lib !== undefined) return join('lib', lib);
  const include = 'tensorflow/include/';
  if (name.startsWith(include) && HEADER_DIRS.some((d) => name.startsWith(include + d))) {
    return join('include', name.slice(include.length));
  }
  return undefined;
}

/** Where a member of an NVIDIA CUDA wheel goes: its shared libraries, beside libtensorflow (its $ORIGIN). */
export function cudaMember(name: string): string | undefined {
  const m = /^nvidia\/[^/]+\/lib\/([^/]+\.so(\.[\d.]+)?)$/.exec(name);
  return m ? join('lib', m[1]) : undefined;
}

interface Extracted {
  dir: string;
  /** Library file names under dir/lib, TensorFlow's and (for --gpu) CUDA's. */
  libraries: string[];
}

const MARKER = 'fwdgrad-setup.json';

async function extract(
  wheel: string,
  cudaWheels: string[],
  cache: string,
  log: (l: string) => void,
): Promise<Extracted> {
  const dir = join(cache, basename(wheel, '.whl'));
  if (existsSync(join(dir, MARKER))) {
    log(`libraries: ${dir} (cached)`);
    return { dir, libraries: readdirSync(join(dir, 'lib')) };
  }
  const partial = `${dir}.partial`;
  rmSync(partial, { recursive: true, force: true });
  log(`extracting libtensorflow and the C headers from ${basename(wheel)} into ${dir}`);
  const n = await extractZip(wheel, partial, tensorflowMember);
  for (const lib of TF_LIBRARIES) {
    if (!existsSync(join(partial, 'lib', lib))) {
      rmSync(partial, { recursive: true, force: true });
      throw new Error(
        `${wheel} holds no tensorflow/${lib}: pass a TensorFlow ${TENSORFLOW_VERSION} wheel for Linux x86_64 ` +
          `(${n} files matched)`,
      );
    }
  }
  for (const w of cudaWheels) {
    log(`extracting CUDA libraries from ${basename(w)}`);
    await extractZip(w, partial, cudaMember);
  }
  writeFileSync(
    join(partial, MARKER),
    `${JSON.stringify({ wheel: basename(wheel), cuda: cudaWheels.map((w) => basename(w)) }, null, 2)}\n`,
  );
  rmSync(dir, { recursive: true, force: true });
  renameSync(partial, dir);
  return { dir, libraries: readdirSync(join(dir, 'lib')) };
}

function link(target: string, path: string): void {
  rmSync(path, { force: true, recursive: true });
  symlinkSync(target, path);
}

/**
 * Points the package's deps/ at the extracted files, under the names its binding.gyp links
 * (-ltensorflow -ltensorflow_framework, rpath $ORIGIN/../../deps/lib) and its install script checks
 * (libtensorflow.so.2.9.1 present: no download is attempted when pnpm runs it again).
 */
function stageDeps(pkgDir: string, extracted: Extracted): void {
  const deps = join(pkgDir, 'deps');
  rmSync(deps, { recursive: true, force: true });
  mkdirSync(join(deps, 'lib'), { recursive: true });
  link(join(extracted.dir, 'include'), join(deps, 'include'));
  const lib = (name: string) => join(extracted.dir, 'lib', name);
  for (const name of ['libtensorflow.so', 'libtensorflow.so.2', 'libtensorflow.so.2.9.1']) {
    link(lib('libtensorflow_cc.so.2'), join(deps, 'lib', name));
  }
  for (const name of ['libtensorflow_framework.so', 'libtensorflow_framework.so.2.9.1']) {
    link(lib('libtensorflow_framework.so.2'), join(deps, 'lib', name));
  }
  // the sonames the addon records (libtensorflow_cc.so.2, libtensorflow_framework.so.2) and CUDA's
  for (const name of extracted.libraries) link(lib(name), join(deps, 'lib', name));
}

/** The addon path tfjs-node loads (node-pre-gyp's `find`, as the package's own index does). */
function bindingPath(pkgDir: string): string {
  const manifest = join(pkgDir, 'package.json');
  const preGyp = createRequire(manifest)('@mapbox/node-pre-gyp') as { find(p: string): string };
  return preGyp.find(manifest);
}

const VERIFY = `
const tf = require(process.argv[1]);
(async () => {
  const ok = await tf.setBackend('tensorflow');
  const y = tf.matMul(tf.tensor2d([[1, 2], [3, 4]]), tf.tensor2d([[5], [6]])).dataSync();
  const b = tf.backend();
  console.log(JSON.stringify({ ok, backend: tf.getBackend(), version: b.binding.TF_Version,
    gpu: typeof b.isUsingGpuDevice === 'boolean' ? b.isUsingGpuDevice : undefined, y: Array.from(y) }));
})().catch((e) => { console.error(e && e.message ? e.message : String(e)); process.exit(1); });
`;

/** Loads the package in a child process and runs one product on its backend. */
function verify(
  pkgDir: string,
  env: NodeJS.ProcessEnv,
): { version: string; gpu?: boolean } | { error: string } {
  const r = spawnSync(process.execPath, ['-e', VERIFY, pkgDir], {
    encoding: 'utf8',
    env: { ...env, TF_CPP_MIN_LOG_LEVEL: env.TF_CPP_MIN_LOG_LEVEL ?? '2' },
    timeout: 120_000,
  });
  const last = (r.stdout ?? '').trim().split('\n').pop() ?? '';
  if (r.status === 0 && last.startsWith('{')) {
    const out = JSON.parse(last) as {
      ok: boolean;
      backend: string;
      version: string;
      gpu?: boolean;
      y: number[];
    };
    if (out.ok && out.backend === 'tensorflow' && out.y[0] === 17 && out.y[1] === 39) {
      return { version: out.version, gpu: out.gpu };
    }
    return { error: `loads, but computed ${JSON.stringify(out)}` };
  }
  const why = `${r.stderr ?? ''}`
    .trim()
    .split('\n')
    .filter((l) => l.trim().length > 0);
  return { error: why.slice(-3).join(' / ') || `exit ${r.status ?? r.signal}` };
}

function tail(file: string, lines: number): string {
  return readFileSync(file, 'utf8').trim().split('\n').slice(-lines).join('\n');
}

/**
 * Builds and installs the addon of @tensorflow/tfjs-node (or, with `gpu`, tfjs-node-gpu) against the
 * libtensorflow in PyPI's TensorFlow wheel, then loads it to check. Idempotent: when the package already
 * loads, nothing is done (unless `force`); wheels and extracted libraries are cached.
 */
export async function setupTensorflow(options: SetupTensorflowOptions = {}): Promise<SetupTensorflowResult> {
  const env = options.env ?? process.env;
  const log = options.log ?? (() => {});
  const gpu = options.gpu === true;
  const pkgName = gpu ? '@tensorflow/tfjs-node-gpu' : '@tensorflow/tfjs-node';
  const pkg = backendPackages().find((p) => p.package === pkgName);
  if (pkg?.dir === undefined) {
    throw new Error(
      `${pkgName} is not installed: it is an optional dependency of @fwdgrad/trainer; run pnpm install ` +
        `(or add ${pkgName}@4.22.0 to your project)`,
    );
  }
  const dir = pkg.dir;
  const binding = bindingPath(dir);
  if (!options.force && existsSync(binding)) {
    const loaded = verify(dir, env);
    if ('version' in loaded) {
      log(`${pkgName} already loads TensorFlow ${loaded.version}; nothing to do (--force rebuilds)`);
      return {
        package: pkgName,
        dir,
        binding,
        tensorflowVersion: loaded.version,
        built: false,
        gpuDevice: loaded.gpu,
      };
    }
  }

  const cache = resolve(options.cache ?? defaultCache(env));
  const wheels = join(cache, 'wheels');
  const project = gpu ? 'tensorflow' : 'tensorflow-cpu';
  const wheelArg = options.wheel === undefined ? undefined : resolve(options.wheel);
  if (wheelArg !== undefined && !existsSync(wheelArg))
    throw new Error(`--wheel ${options.wheel}: no such file`);
  let wheel = wheelArg ?? cachedWheel(wheels, `${wheelName(project)}-${TENSORFLOW_VERSION}-`);
  const tools = findToolchain(env);
  const missing = missingPrerequisites(tools, { pip: wheel === undefined || gpu, gpu }, env);
  if (missing.length > 0) {
    throw new Error(`cannot build ${pkgName}'s addon; missing:\n  ${missing.join('\n  ')}`);
  }
  const pip = tools.pip as string[];
  if (wheel === undefined) {
    log(`downloading ${project}==${TENSORFLOW_VERSION} with pip into ${wheels} (about 270 MB, once)`);
    pipDownload(pip, wheels, [`${project}==${TENSORFLOW_VERSION}`], env);
    wheel = cachedWheel(wheels, `${wheelName(project)}-${TENSORFLOW_VERSION}-`);
    if (wheel === undefined)
      throw new Error(`pip reported success but left no ${project} wheel in ${wheels}`);
  } else log(`wheel: ${wheel}${wheelArg === undefined ? ' (cached)' : ''}`);

  const cudaWheels: string[] = [];
  if (gpu) {
    const metadata = (await readZipText(wheel, `tensorflow-${TENSORFLOW_VERSION}.dist-info/METADATA`)) ?? '';
    const specs = cudaRequirements(metadata);
    if (specs.length === 0) {
      throw new Error(
        `${wheel} lists no CUDA wheels (extra "and-cuda"): pass the GPU wheel of tensorflow, not tensorflow-cpu`,
      );
    }
    const wanted = specs.map((s) => `${wheelName(s.split(/[=<>!~]/)[0])}-`);
    if (!wanted.every((prefix) => cachedWheel(wheels, prefix) !== undefined)) {
      log(`downloading NVIDIA's CUDA 12 libraries with pip: ${specs.join(' ')}`);
      pipDownload(pip, wheels, specs, env);
    }
    for (const prefix of wanted) {
      const w = cachedWheel(wheels, prefix);
      if (w === undefined) throw new Error(`pip left no ${prefix}*.whl in ${wheels}`);
      cudaWheels.push(w);
    }
  }

  const extracted = await extract(wheel, cudaWheels, cache, log);
  stageDeps(dir, extracted);
  const napi = /napi-v(\d+)/.exec(binding)?.[1] ?? process.versions.napi;
  const buildLog = join(cache, `build-${basename(dir)}.log`);
  log(`building ${pkgName}'s addon (node-gyp from npm, --nodedir=${tools.nodeDir}); log: ${buildLog}`);
  const args = [
    tools.nodeGyp as string,
    'rebuild',
    `--nodedir=${tools.nodeDir}`,
    `--python=${tools.python}`,
    '--module_name=tfjs_binding',
    `--module_path=${dirname(binding)}`,
    `--napi_build_version=${napi}`,
  ];
  const r = spawnSync(process.execPath, args, {
    cwd: dir,
    env: { ...env, CXX: tools.cxx },
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  writeFileSync(buildLog, `${r.stdout ?? ''}\n${r.stderr ?? ''}`);
  if (r.status !== 0 || !existsSync(binding)) {
    throw new Error(
      `node-gyp failed (exit ${r.status ?? r.signal}); last lines of ${buildLog}:\n${tail(buildLog, 15)}`,
    );
  }
  const loaded = verify(dir, env);
  if (!('version' in loaded))
    throw new Error(`${pkgName}'s addon was built (${binding}) but does not load: ${loaded.error}`);
  log(`${pkgName} loads TensorFlow ${loaded.version} (${binding})`);
  return {
    package: pkgName,
    dir,
    binding,
    tensorflowVersion: loaded.version,
    built: true,
    libraries: extracted.dir,
    gpuDevice: loaded.gpu,
  };
}

/** `fwdgrad setup tensorflow [--gpu] [--wheel FILE] [--cache DIR] [--force] [--json]`. */
export function registerSetup(program: Command): void {
  const setup = program.command('setup').description('build optional backends on this machine');
  setup
    .command('tensorflow')
    .description(
      "build @tensorflow/tfjs-node's addon (tfjs-node-gpu's with --gpu) against the libtensorflow in PyPI's " +
        `TensorFlow ${TENSORFLOW_VERSION} wheel: the node backends where their own install cannot download libtensorflow`,
    )
    .option(
      '--gpu',
      "tfjs-node-gpu, against the tensorflow wheel and NVIDIA's CUDA 12 pip wheels (needs an NVIDIA driver)",
    )
    .option(
      '--wheel <file>',
      'a TensorFlow wheel already on disk (default: pip downloads it once into the cache)',
    )
    .option(
      '--cache <dir>',
      'where wheels and extracted libraries are kept (default: ~/.cache/fwdgrad/tensorflow)',
    )
    .option('--force', 'rebuild even when the package already loads')
    .option('--json', 'print one JSON object')
    .action(
      async (opts: { gpu?: boolean; wheel?: string; cache?: string; force?: boolean; json?: boolean }) => {
        const result = await setupTensorflow({ ...opts, log: (line) => console.error(`setup: ${line}`) });
        if (opts.json) console.log(JSON.stringify(result));
        else {
          console.log(
            `${result.package}: TensorFlow ${result.tensorflowVersion} ${result.built ? 'built and loads' : 'loads'}; ` +
              `use --backend ${opts.gpu ? 'node-gpu' : 'node'}${opts.gpu && result.gpuDevice === false ? ' (no GPU device visible to TensorFlow)' : ''}`,
          );
        }
      },
    );
}
