// Setup of the browser test runs (vitest.browser.config.ts): registers tfjs's WebGPU backend (WebGL comes with
// @tensorflow/tfjs) and switches to the backend this instance tests, failing loudly when the browser lacks it.
import '@tensorflow/tfjs-backend-webgpu';
import * as tf from '@tensorflow/tfjs';
import { testBackend } from './testing.test-util.js';

const backend = testBackend();
if (!(await tf.setBackend(backend))) {
  throw new Error(`tfjs backend '${backend}' could not be initialised in this browser`);
}
await tf.ready();
