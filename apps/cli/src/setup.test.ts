import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32, deflateRawSync } from 'node:zlib';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { main } from './program.js';
import {
  cudaMember,
  cudaRequirements,
  findToolchain,
  missingPrerequisites,
  setupTensorflow,
  TENSORFLOW_VERSION,
  tensorflowMember,
} from './setup.js';
import { extractZip, listZip, readZipText } from './wheel.js';

const dir = mkdtempSync(join(tmpdir(), 'fwdgrad-setup-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A zip archive of `files` (deflated unless `stored` names them), as Python's zipfile writes one. */
function makeZip(files: Record<string, string>, stored: string[] = []): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const [name, text] of Object.entries(files)) {
    const data = Buffer.from(text);
    const method = stored.includes(name) ? 0 : 8;
    const body = method === 0 ? data : deflateRawSync(data);
    const nameBytes = Buffer.from(name);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(method, 8);
    local.writeUInt32LE(crc32(data), 14);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(nameBytes.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(method, 10);
    central.writeUInt32LE(crc32(data), 16);
    central.writeUInt32LE(body.length, 20);
    central.writeUInt32LE(data.length, 24);
    central.writeUInt16LE(nameBytes.length, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, nameBytes, body);
    centrals.push(central, nameBytes);
    offset += 30 + nameBytes.length + body.length;
  }
  const cd = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(Object.keys(files).length, 8);
  end.writeUInt16LE(Object.keys(files).length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, end]);
}

describe('wheel reading (zip without Python)', () => {
  const big = 'x'.repeat(100_000);
  const wheel = join(dir, 'demo-1.0-py3-none-any.whl');
  writeFileSync(
    wheel,
    makeZip(
      {
        'tensorflow/libtensorflow_cc.so.2': big,
        'tensorflow/include/tensorflow/c/c_api.h': '#define TF_C_API 1\n',
        'tensorflow/include/tensorflow/compiler/huge.h': 'not needed',
        'tensorflow/include/tsl/platform/status.h': 'tsl',
        'demo-1.0.dist-info/METADATA': 'Name: demo\n',
        '../escape.txt': 'outside',
        'empty.txt': '',
      },
      ['tensorflow/include/tsl/platform/status.h', 'empty.txt'],
    ),
  );

  it('lists members with their methods and sizes', async () => {
    const entries = await listZip(wheel);
    expect(entries.map((e) => e.name)).toContain('tensorflow/libtensorflow_cc.so.2');
    const lib = entries.find((e) => e.name === 'tensorflow/libtensorflow_cc.so.2');
    expect(lib?.method).toBe(8);
    expect(lib?.size).toBe(100_000);
    expect(lib?.compressedSize).toBeLessThan(1000);
  });

  it('extracts the members a mapping names (deflated and stored), never outside the folder', async () => {
    const out = join(dir, 'out');
    const n = await extractZip(wheel, out, (name) =>
      name === 'empty.txt' ? 'empty.txt' : tensorflowMember(name),
    );
    expect(n).toBe(4);
    expect(readFileSync(join(out, 'lib', 'libtensorflow_cc.so.2'), 'utf8')).toBe(big);
    expect(readFileSync(join(out, 'include', 'tensorflow', 'c', 'c_api.h'), 'utf8')).toContain('TF_C_API');
    expect(readFileSync(join(out, 'include', 'tsl', 'platform', 'status.h'), 'utf8')).toBe('tsl');
    expect(readFileSync(join(out, 'empty.txt'), 'utf8')).toBe('');
    expect(existsSync(join(out, 'include', 'tensorflow', 'compiler'))).toBe(false);
    const all = await extractZip(wheel, join(dir, 'all'), (name) => name);
    expect(all).toBe(6); // every member but ../escape.txt
    expect(existsSync(join(dir, 'escape.txt'))).toBe(false);
  });

  it('reads a small member as text, and names a file that is not a zip', async () => {
    expect(await readZipText(wheel, 'demo-1.0.dist-info/METADATA')).toBe('Name: demo\n');
    expect(await readZipText(wheel, 'missing')).toBeUndefined();
    const notZip = join(dir, 'broken.whl');
    writeFileSync(notZip, 'this is not a zip file');
    await expect(listZip(notZip)).rejects.toThrow(/broken\.whl is not a readable wheel.*download it again/);
  });
});

describe('what the setup takes from the wheels', () => {
  it('libtensorflow, its framework library and only the C API headers', () => {
    expect(tensorflowMember('tensorflow/libtensorflow_cc.so.2')).toBe(join('lib', 'libtensorflow_cc.so.2'));
    expect(tensorflowMember('tensorflow/libtensorflow_framework.so.2')).toBe(
      join('lib', 'libtensorflow_framework.so.2'),
    );
    expect(tensorflowMember('tensorflow/include/tensorflow/c/eager/c_api.h')).toBe(
      join('include', 'tensorflow', 'c', 'eager', 'c_api.h'),
    );
    expect(tensorflowMember('tensorflow/include/xla/tsl/c/tsl_status.h')).toBeDefined();
    expect(tensorflowMember('tensorflow/include/xla/service/hlo.h')).toBeUndefined();
    expect(tensorflowMember('tensorflow/python/_pywrap_tensorflow_internal.so')).toBeUndefined();
  });

  it("NVIDIA wheels' shared libraries, flattened beside libtensorflow", () => {
    expect(cudaMember('nvidia/cublas/lib/libcublas.so.12')).toBe(join('lib', 'libcublas.so.12'));
    expect(cudaMember('nvidia/cudnn/lib/libcudnn.so.9')).toBe(join('lib', 'libcudnn.so.9'));
    expect(cudaMember('nvidia/cudnn/include/cudnn.h')).toBeUndefined();
    expect(cudaMember('nvidia/__init__.py')).toBeUndefined();
  });

  it("the CUDA wheels of tensorflow's and-cuda extra, from its METADATA", () => {
    const metadata = [
      'Metadata-Version: 2.1',
      'Name: tensorflow',
      'Requires-Dist: numpy>=1.26.0',
      'Requires-Dist: nvidia-cublas-cu12==12.5.3.2; extra == "and-cuda"',
      "Requires-Dist: nvidia-cudnn-cu12 (==9.3.0.75) ; extra == 'and-cuda'",
      'Requires-Dist: tensorboard~=2.21.0',
    ].join('\n');
    expect(cudaRequirements(metadata)).toEqual([
      'nvidia-cublas-cu12==12.5.3.2',
      'nvidia-cudnn-cu12==9.3.0.75',
    ]);
  });
});

describe('prerequisites', () => {
  it('names each missing tool with what to install', () => {
    const empty = join(dir, 'empty-path');
    const env = { PATH: empty, HOME: dir };
    const tools = findToolchain(env);
    expect(tools.cxx).toBeUndefined();
    const missing = missingPrerequisites(
      { ...tools, nodeGyp: undefined, nodeDir: undefined },
      { pip: true, gpu: true, nvidiaDriver: false },
      env,
    );
    const lines = Object.fromEntries(missing.map((l) => [l.split(':')[0], l]));
    expect(lines.pip).toMatch(/apt-get install python3-pip.*--wheel FILE.*tensorflow 2\.21\.0/);
    expect(lines['C++ compiler']).toMatch(/apt-get install g\+\+/);
    expect(lines.make).toMatch(/apt-get install make/);
    expect(lines.python3).toMatch(/apt-get install python3/);
    expect(lines['node-gyp']).toMatch(/install npm/);
    expect(missing.find((l) => l.startsWith(`Node.js headers for node ${process.version}:`))).toMatch(
      /FWDGRAD_NODEDIR/,
    );
    expect(lines['NVIDIA driver']).toMatch(/without --gpu/);
    expect(missing).toHaveLength(7);
  });

  it('needs nothing more when every tool is there (and pip only without a wheel)', () => {
    const tools = {
      pip: ['pip'],
      cxx: 'c++',
      make: 'make',
      python: 'python3',
      nodeGyp: 'node-gyp.js',
      nodeDir: '/usr',
    };
    expect(missingPrerequisites(tools, { pip: true, gpu: false })).toEqual([]);
    expect(missingPrerequisites({ ...tools, pip: undefined }, { pip: false, gpu: false })).toEqual([]);
    expect(missingPrerequisites(tools, { pip: true, gpu: true, nvidiaDriver: true })).toEqual([]);
  });
});

describe('fwdgrad setup tensorflow', () => {
  it('rejects a wheel that does not exist, naming it', async () => {
    await expect(setupTensorflow({ wheel: join(dir, 'nope.whl'), force: true, cache: dir })).rejects.toThrow(
      /--wheel .*nope\.whl: no such file/,
    );
  });

  it('is a command of the CLI: errors exit 1 with one line', async () => {
    const err = vi.spyOn(console, 'error').mockImplementation(() => {});
    const code = await main([
      'setup',
      'tensorflow',
      '--force',
      '--wheel',
      join(dir, 'nope.whl'),
      '--cache',
      dir,
    ]);
    const printed = err.mock.calls.map((c) => c.join(' ')).join('\n');
    err.mockRestore();
    expect(code).toBe(1);
    expect(printed).toMatch(/fwdgrad: --wheel .*nope\.whl: no such file/);
    expect(TENSORFLOW_VERSION).toBe('2.21.0');
  });
});
