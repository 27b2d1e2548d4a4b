#!/usr/bin/env node
console.error('fwdgrad-bench: no suites yet');
process.exit(2);
