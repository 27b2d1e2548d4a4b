export { createProgram, main, positiveInt, runProgram, USAGE_ERROR } from './program.js';
