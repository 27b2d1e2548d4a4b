export { applyConfig } from './config.js';
export {
  commaList,
  integer,
  nonNegativeInt,
  nonNegativeNumber,
  positiveInt,
  positiveNumber,
} from './flags.js';
export { abortOnSignals, CommandError, runProgram, SIGNAL_EXIT, USAGE_ERROR, UsageError } from './program.js';
