/**
 * @fwdgrad/random — the one seeded random source of fwdgrad: streams keyed by 32-bit keys and split by
 * name (JAX-style), scalar draws for data pipelines and tensor draws (normal, Rademacher) for estimators.
 */
export {
  createRandom,
  hashSeed,
  NORMAL_BLOCK,
  NORMAL_STRIDE,
  type NormalFiller,
  normalFiller,
  type Random,
  setNormalFiller,
  shuffleInPlace,
  streamId,
  type ZigguratTables,
} from './random.js';
