#!/usr/bin/env node
// The `ofm` command (`pnpm exec ofm`, `npx ofm`, or on the PATH after `pnpm link --global`). The
// program itself is built into dist/; this file is there before the build, so that installing the
// workspace can link the command, and it says what to do when the build is missing.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const program = new URL('../dist/bin.js', import.meta.url);
if (existsSync(fileURLToPath(program))) {
  await import(program.href);
} else {
  process.stderr.write(`ofm: error: the CLI is not built (${fileURLToPath(program)} is missing): run pnpm build in the repository root\n`);
  process.exitCode = 1;
}
