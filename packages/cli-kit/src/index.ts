export { nonNegativeNumber, positiveInt, positiveNumber, integer, commaList } from './flags.js';
export { runProgram, SIGNAL_EXIT, UsageError, USAGE_ERROR } from './program.js';
