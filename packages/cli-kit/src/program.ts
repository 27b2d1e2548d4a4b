import { type Command, CommanderError } from 'commander';

/** Exit code for usage errors (unknown flag, bad value, flags that contradict), as in most Unix tools. */
export const USAGE_ERROR = 2;

/** Exit codes of a command ended by a signal (128 + signal number), as shells report them. */
export const SIGNAL_EXIT = { SIGINT: 130, SIGTERM: 143 } as const;

/**
 * A usage error found after parsing (values that contradict each other or the data): printed as
 * one line and exits with {@link USAGE_ERROR}, like a bad flag value. Throw it before anything is
 * written.
 */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/**
 * Parses `argv` with a commander program and returns the process exit code: 0, 2 for usage
 * errors (unknown flag, bad value — commander has already printed why — or a {@link UsageError},
 * printed here), 1 for a failure, printed as one `name: message` line.
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
    return err instanceof UsageError ? USAGE_ERROR : 1;
  }
}
