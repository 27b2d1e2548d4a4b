import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { applyConfig } from './config.js';
import { UsageError } from './program.js';

export * from './index.js';

/**
 * Applies a JSON settings file to a parsed command (`--config FILE`): see {@link applyConfig} for
 * what the file may hold. An unreadable or invalid file is a {@link UsageError} naming it.
 */
export function applyConfigFile(command: Command, file: string): void {
  let settings: unknown;
  try {
    settings = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new UsageError(`--config ${file}: cannot read it as JSON (${(err as Error).message})`);
  }
  applyConfig(command, settings, file);
}
