#!/usr/bin/env node
// Training throughput in the browser (issue 16 item 5): the built page (`pnpm web:build`) driven through its
// query-string contract in the system Chromium, headless (scripts/chromium.mjs: WebGL and WebGPU both on
// SwiftShader, i.e. CPU emulations here). Prints one JSON line per run: the page's result (examples/s counts
// step time only, as `fwdgrad train --json` does).
//   node apps/web/scripts/browser-speed.mjs webgl:S/1/1:1024 webgpu:S/1/1:256 …
import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { CHROMIUM_ARGS, chromiumPath } from '../../../scripts/chromium.mjs';

const root = fileURLToPath(new URL('../dist', import.meta.url));
const types = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm' };
const server = createServer((req, res) => {
  let file = join(root, normalize(decodeURIComponent(new URL(req.url, 'http://x').pathname)));
  if (!file.startsWith(root) || !existsSync(file)) return res.writeHead(404).end();
  if (statSync(file).isDirectory()) file = join(file, 'index.html');
  res.writeHead(200, { 'Content-Type': types[extname(file)] ?? 'application/octet-stream' });
  createReadStream(file).pipe(res);
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const base = `http://127.0.0.1:${server.address().port}/`;
const browser = await chromium.launch({ executablePath: chromiumPath(), args: CHROMIUM_ARGS });
for (const spec of process.argv.slice(2)) {
  const [backend, model, limit, algo = 'lg-fg-a', batch = '64'] = spec.split(':');
  const page = await browser.newPage();
  await page.goto(
    `${base}?autorun=1&backend=${backend}&algo=${algo}&model=${model}&limit-train=${limit}&limit-test=100&epochs=1&batch-size=${batch}&seed=0`,
  );
  await page.waitForFunction(
    () => document.getElementById('result').textContent + document.getElementById('error').textContent !== '',
    undefined,
    { timeout: 1_200_000, polling: 1000 },
  );
  const error = await page.textContent('#error');
  console.log(error ? JSON.stringify({ backend, model, error }) : await page.textContent('#result'));
  await page.close();
}
await browser.close();
server.close();
