import { main } from './cli';
import { adoptCallerDirectory } from './invocation';

// Under `pnpm ofm`, relative paths resolve from the caller's directory, not the repository root.
adoptCallerDirectory();

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`ofm: error: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
