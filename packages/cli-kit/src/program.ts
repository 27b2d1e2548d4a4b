import { type Command, CommanderError } from 'commander';

/** Exit code for usage errors (unknown flag, bad value, flags that contradict), as in most Unix tools. */
export const USAGE_ERROR = 2;

/** Exit codes of a command ended by a signal (128 + signal number), as shells report them. */
export const SIGNAL_EXIT = { SIGINT: 130, SIGTERM: 143 } as const;

/** An error that ends the command with a given exit code (printed as one `name: message` line). */
export class CommandError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode: number) {
    super(message);
    this.name = 'CommandError';
    this.exitCode = exitCode;
  }
}

/**
 * A usage error found after parsing (values that contradict each other or the data): printed as
 * one line and exits with {@link USAGE_ERROR}, like a bad flag value. Throw it before anything is
 * written.
 */
export class UsageError extends CommandError {
  constructor(message: string) {
    super(message, USAGE_ERROR);
    this.name = 'UsageError';
  }
}

/**
 * Parses `argv` with a commander program and returns the process exit code: 0, 2 for usage
 * errors (unknown flag, bad value — commander has already printed why — or a {@link UsageError},
 * printed here), a {@link CommandError}'s code, 1 for any other failure; errors are printed as one
 * `name: message` line.
 */
export async function runProgram(program: Command, argv: string[], name: string): Promise<number> {
  const override = (cmd: Command) => {
    cmd.exitOverride();
    cmd.commands.forEach(override);
  };
  override(program);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      const help = ['commander.helpDisplayed', 'commander.version', 'commander.help'];
      return help.includes(err.code) ? 0 : USAGE_ERROR;
    }
    console.error(`${name}: ${err instanceof Error ? err.message : String(err)}`);
    return err instanceof CommandError ? err.exitCode : 1;
  }
}

/**
 * Aborts `controller` on the first SIGINT or SIGTERM (its reason: the signal's name) instead of
 * ending the process, so the work in progress can stop cleanly; later signals are ignored (the
 * wrapper `pnpm fwdgrad` and a terminal may deliver the same Ctrl-C twice; SIGKILL still ends it).
 * Returns a function that restores the default behaviour.
 */
export function abortOnSignals(
  controller: AbortController,
  onSignal: (signal: NodeJS.Signals) => void = () => {},
): () => void {
  const handler = (signal: NodeJS.Signals) => {
    if (controller.signal.aborted) return;
    onSignal(signal);
    controller.abort(signal);
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return () => {
    process.removeListener('SIGINT', handler);
    process.removeListener('SIGTERM', handler);
  };
}
