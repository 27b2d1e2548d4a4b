import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { expect, it } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '../../..');

/**
 * Node-only by purpose, so left out: @fwdgrad/native is a C addon for Node (it loads a `.node` binary), and
 * @fwdgrad/cli-kit builds on commander, a Node library (its own code imports no `node:` module from its main
 * entry; the config-file reader is `@fwdgrad/cli-kit/node`). Every other library's main entry must bundle for
 * the browser (sweep's run folders, runner and queue are behind `@fwdgrad/sweep/node`).
 */
const NODE_ONLY = new Set(['@fwdgrad/native', '@fwdgrad/cli-kit']);

interface Manifest {
  name: string;
  exports: { '.': { import: { default: string } } };
}

/** Each library's name and the built file its main ESM entry resolves to. */
const libraries = readdirSync(join(root, 'packages'))
  .map((dir) => {
    const pkg = JSON.parse(readFileSync(join(root, 'packages', dir, 'package.json'), 'utf8')) as Manifest;
    return { name: pkg.name, entry: join(root, 'packages', dir, pkg.exports['.'].import.default) };
  })
  .filter((lib) => !NODE_ONLY.has(lib.name))
  .sort((a, b) => a.name.localeCompare(b.name));

it('finds the libraries', () => {
  expect(libraries.map((l) => l.name)).toEqual(
    expect.arrayContaining(['@fwdgrad/datasets', '@fwdgrad/jvp-core', '@fwdgrad/plot', '@fwdgrad/trainer']),
  );
});

for (const { name, entry } of libraries) {
  it(`${name}'s main entry bundles for the browser (esbuild --platform=browser, no node: module)`, async () => {
    const out = await build({
      entryPoints: [entry],
      bundle: true,
      platform: 'browser',
      format: 'esm',
      write: false,
      logLevel: 'silent',
      // the peer dependency is the user's; bundling it too would only slow the check
      external: ['@tensorflow/tfjs', '@tensorflow/tfjs-core'],
    });
    expect(out.errors).toEqual([]);
    expect(out.outputFiles[0].text).not.toMatch(/from ["']node:|require\(["']node:/);
  });
}
