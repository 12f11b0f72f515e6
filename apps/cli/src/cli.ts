import { Command, CommanderError } from 'commander';
import { CliError, EXIT } from './errors';
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
    if (err instanceof CliError) {
      process.stderr.write(`ofm: error: ${err.message}\n`);
      return err.exitCode;
    }
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`ofm: error: ${message}\n`);
    if (process.env.OFM_DEBUG && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
    return EXIT.failure;
  }
}
