import type { Command, Option } from 'commander';
import { UsageError } from './program.js';

const camel = (key: string) => key.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

function findOption(command: Command, key: string): Option | undefined {
  return command.options.find(
    (o) => o.long === `--${key}` || o.long === `--no-${key}` || o.attributeName() === camel(key),
  );
}

/**
 * Applies settings to a parsed command: an object whose keys are the command's long flag names
 * (`"batch-size": 64`, or `"batchSize"`) and whose values are what the flag takes (numbers and
 * strings as on the command line, `true`/`false` for switches). Flags given on the command line win.
 * Values go through the flag's own parser and choices; anything unknown or invalid is a
 * {@link UsageError} naming `file` (where the settings came from) and the setting. Browser-safe: the
 * file reading half is `applyConfigFile` in `@fwdgrad/cli-kit/node`.
 */
export function applyConfig(command: Command, settings: unknown, file: string): void {
  if (settings === null || typeof settings !== 'object' || Array.isArray(settings)) {
    throw new UsageError(`--config ${file}: expected a JSON object of flag names and values`);
  }
  for (const [key, value] of Object.entries(settings as Record<string, unknown>)) {
    const option = findOption(command, key);
    if (option === undefined || key === 'config' || option.long === '--config') {
      const names = command.options
        .map((o) => o.long?.replace(/^--(no-)?/, ''))
        .filter((n) => n && n !== 'config' && n !== 'help');
      throw new UsageError(
        `--config ${file}: unknown setting '${key}'; use the long flag names of '${command.name()}': ${[...new Set(names)].join(', ')}`,
      );
    }
    const attr = option.attributeName();
    if (command.getOptionValueSource(attr) === 'cli') continue;
    const bad = (expected: string) =>
      new UsageError(`--config ${file}: '${key}' expects ${expected}, got ${JSON.stringify(value)}`);
    let parsed: unknown;
    if (option.required || option.optional) {
      if (typeof value !== 'string' && typeof value !== 'number') throw bad('a string or number');
      const text = String(value);
      if (option.argChoices && !option.argChoices.includes(text))
        throw bad(`one of ${option.argChoices.join(', ')}`);
      try {
        parsed = option.parseArg ? option.parseArg(text, undefined) : text;
      } catch (err) {
        throw new UsageError(`--config ${file}: '${key}': ${(err as Error).message}`);
      }
    } else {
      if (typeof value !== 'boolean') throw bad('true or false');
      // `"relu-mask": false` and `"no-relu-mask": true` both mean --no-relu-mask
      parsed = option.negate && option.long === `--${key}` ? !value : value;
    }
    command.setOptionValueWithSource(attr, parsed, 'config');
  }
}
