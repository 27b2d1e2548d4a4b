// shared settings: ../../vitest.shared.ts
export { default } from '../../vitest.shared';
