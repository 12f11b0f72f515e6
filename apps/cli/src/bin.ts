import { main } from './cli';
import { adoptCallerDirectory } from './invocation';

// Under `pnpm ofm`, relative paths resolve from the caller's directory, not the repository root.
adoptCallerDirectory();

// A reader that stops early (`ofm train --help | head`) closes the pipe: that ends the output, it
// is not an error worth a stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`ofm: error: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
