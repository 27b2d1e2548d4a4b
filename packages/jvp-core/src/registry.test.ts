import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs';
import { expect, it } from 'vitest';
import { jvp, registerJvpRule, supportedKernels } from './index.js';

type JvpCore = typeof import('./index.js');

it('keeps one JVP rule registry per process, shared by the ESM and CJS builds (globalThis + Symbol.for)', async () => {
  // the package's two published builds, loaded side by side as a bundler or a mixed ESM/CJS app may
  const esm: JvpCore = await import(new URL('../dist/index.js', import.meta.url).href);
  const cjs: JvpCore = createRequire(import.meta.url)('../dist/index.cjs');
  expect(cjs.supportedKernels()).toEqual(supportedKernels());
  expect(esm.supportedKernels()).toEqual(supportedKernels());
  // a rule registered through one copy is used by the others
  const name = 'FwdgradRegistryProbe';
  cjs.registerJvpRule(name, (c) => c.tangents.x);
  expect(esm.supportedKernels()).toContain(name);
  expect(supportedKernels()).toContain(name);
  // and JVPs through every copy still give the right numbers: d/dx sin(x)·x at x = 0.5 along 1 = cos(.5)·.5 + sin(.5)
  const x = tf.scalar(0.5);
  const t = tf.scalar(1);
  for (const core of [esm, cjs]) {
    const [y, dy] = core.jvp((v: tf.Tensor) => tf.mul(tf.sin(v), v), [x], [t]);
    expect(dy.dataSync()[0]).toBeCloseTo(Math.cos(0.5) * 0.5 + Math.sin(0.5), 6);
    tf.dispose([y, dy]);
  }
  const [y, dy] = jvp((v: tf.Tensor) => tf.mul(tf.sin(v), v), [x], [t]);
  expect(dy.dataSync()[0]).toBeCloseTo(Math.cos(0.5) * 0.5 + Math.sin(0.5), 6);
  tf.dispose([x, t, y, dy]);
  registerJvpRule(name, (c) => c.tangents.x);
});

it("sees only the outer kernel when a backend runs a kernel through other kernels (tfjs-node's _FusedMatMul)", () => {
  // tfjs-node implements _FusedMatMul with tf.matMul, tf.add and the activation, run through the engine: the
  // outer kernel's rule gives the tangent, so the inner kernels must not be differentiated too (they
  // perturbed a site twice and drew a weight tangent for a Dense bias). Here the outer kernel runs Sinh,
  // which has no JVP rule: differentiating it would throw.
  const name = 'FwdgradNestedProbe';
  expect(supportedKernels()).not.toContain('Sinh');
  tf.registerKernel({
    kernelName: name,
    backendName: tf.getBackend(),
    kernelFunc: ({ inputs }) => tf.tidy(() => tf.mul(tf.sinh(inputs.x as tf.Tensor), 2)),
  });
  registerJvpRule(name, (c) => tf.mul(tf.mul(tf.cosh(c.inputs.x), 2), c.tangents.x as tf.Tensor));
  const x = tf.tensor1d([0.3, -1.2]);
  const t = tf.tensor1d([1, 0.5]);
  const [y, dy] = jvp((v: tf.Tensor) => tf.engine().runKernel(name, { x: v }) as tf.Tensor, [x], [t]);
  expect(Array.from(y.dataSync())).toEqual(Array.from(tf.mul(tf.sinh(x), 2).dataSync()));
  const expected = [2 * Math.cosh(0.3), 2 * Math.cosh(-1.2) * 0.5];
  Array.from(dy.dataSync()).forEach((v, i) => {
    expect(v).toBeCloseTo(expected[i], 5);
  });
  tf.dispose([x, t, y, dy]);
  tf.unregisterKernel(name, tf.getBackend());
});
