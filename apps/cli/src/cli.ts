import { errorKind, isAbortError } from '@ofm/errors';
import { Command, CommanderError } from 'commander';
import { CliError, EXIT } from './errors';
import { interruptExitCode } from './util';
import { registerInfo } from './commands/info';
import { registerSynth } from './commands/synth';
import { registerMetrics } from './commands/metrics';
import { registerTrain } from './commands/train';
import { registerEval } from './commands/evaluate';
import { registerDetect } from './commands/detect';
import { registerInspect } from './commands/inspect';
import { registerExport } from './commands/export';
import { registerQuickstart } from './commands/quickstart';
import { registerBench } from './commands/bench';
import { registerServe } from './commands/serve';
import pkg from '../package.json' with { type: 'json' };

export const VERSION: string = pkg.version;

/** Build the `ofm` program. Each command lives in its own module under ./commands. */
export function buildProgram(): Command {
  const program = new Command('ofm')
    .description('one-for-more: continual visual anomaly detection with a diffusion model')
    .version(VERSION, '-v, --version', 'print the ofm version')
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText('after', `\n${EXIT_CODES_HELP}`)
    // Usage errors from commander ("error: unknown option ...") get the prefix of every other error.
    // Set before the commands are added: each inherits it.
    .configureOutput({ outputError: (message, write) => write(`ofm: ${message}`) })
    .exitOverride();
  registerInfo(program);
  registerSynth(program);
  registerMetrics(program);
  registerQuickstart(program);
  registerTrain(program);
  registerEval(program);
  registerDetect(program);
  registerInspect(program);
  registerExport(program);
  registerBench(program);
  registerServe(program);
  return program;
}

/** The exit codes, as `ofm --help` lists them (see {@link exitCodeOf}). */
export const EXIT_CODES_HELP = `Exit codes:
  0    done
  1    failure: a bug, an I/O failure, training stopped on non-finite values
  2    bad input: a usage error, a bad option or config value, missing or damaged data, a
       missing, damaged, foreign or locked checkpoint
  130  interrupted (Ctrl-C, SIGINT)
  143  terminated (SIGTERM)
Errors are one line on stderr starting with "ofm: error:" (OFM_DEBUG=1 adds the stack trace).`;

/**
 * The one place where an error becomes an exit code. A {@link CliError} carries its own; an error
 * of `@ofm/errors` is mapped by its kind: 'config', 'data' and 'checkpoint' are bad input (2),
 * 'numeric' a failure (1), 'aborted' (and any error named 'AbortError') an interruption (130, or
 * 143 after SIGTERM). Anything else is a failure (1).
 */
export function exitCodeOf(err: unknown): number {
  if (err instanceof CliError) return err.exitCode;
  if (isAbortError(err)) return interruptExitCode(err);
  switch (errorKind(err)) {
    case 'config':
    case 'data':
    case 'checkpoint':
      return EXIT.usage;
    case 'numeric':
      return EXIT.failure;
    default:
      return EXIT.failure;
  }
}

/** Run the CLI; returns the exit code instead of exiting, so tests can call it in-process. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return EXIT.ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version exit through here with code 0; usage errors were already printed.
      return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`ofm: error: ${message}\n`);
    if (process.env.OFM_DEBUG && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
    return exitCodeOf(err);
  }
}
