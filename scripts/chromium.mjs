// The headless Chromium the browser tests run in (issue 16): the system `chromium` (Debian package; `.ci/run`
// installs it when missing) driven by playwright — no browser download. The flags give WebGL2 (ANGLE on
// SwiftShader) and a WebGPU adapter (SwiftShader's Vulkan) on a machine without a GPU: CPU emulations, correct
// and slow, so the tests keep models tiny.
import { existsSync } from 'node:fs';

export const CHROMIUM_ARGS = [
  '--headless=new',
  '--no-sandbox',
  '--enable-unsafe-swiftshader',
  '--enable-unsafe-webgpu',
  '--use-webgpu-adapter=swiftshader',
  '--enable-features=Vulkan',
  '--use-vulkan=swiftshader',
  '--use-angle=swiftshader',
];

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];

/** Path of the Chromium binary: $FWDGRAD_CHROMIUM, else the first system one found. Throws with the fix. */
export function chromiumPath() {
  const found = [process.env.FWDGRAD_CHROMIUM, ...CANDIDATES].find((p) => p && existsSync(p));
  if (found === undefined) {
    throw new Error(
      `No Chromium found (looked at ${CANDIDATES.join(', ')}; FWDGRAD_CHROMIUM unset). The browser tests need ` +
        'one: `apt-get install chromium` (Debian), or set FWDGRAD_CHROMIUM to a Chromium/Chrome binary.',
    );
  }
  return found;
}
