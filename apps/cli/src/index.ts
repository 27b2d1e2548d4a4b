export { createProgram, main, positiveInt, USAGE_ERROR } from './program.js';
