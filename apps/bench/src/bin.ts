#!/usr/bin/env node
import { main } from './program.js';

main(process.argv.slice(2), { restartOnBrokenBackend: true }).then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
