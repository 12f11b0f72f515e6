/**
 * Errors the CLI reports as one clear line (no stack trace) with a meaningful exit code.
 * Exit codes: 0 ok, 1 runtime failure, 2 bad usage or bad input, 130 interrupted (SIGINT, Ctrl-C),
 * 143 terminated (SIGTERM).
 */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 2,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

export const EXIT = { ok: 0, failure: 1, usage: 2, interrupted: 130, terminated: 143 } as const;
