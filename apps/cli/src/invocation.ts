/**
 * How the user started `ofm`, so that paths resolve from their directory and the commands we
 * suggest can be pasted back as they are.
 */

let prefix = 'ofm';

/**
 * Under `pnpm ofm` (the repository's root script), pnpm runs us in the repository root and keeps
 * the caller's directory in INIT_CWD: go back there, so that relative paths mean what the user
 * meant. Only for that script (npm_lifecycle_event 'ofm'): INIT_CWD is inherited by every child of
 * a pnpm script (tests, for one) and means nothing to them. Returns true when it applied.
 */
export function adoptCallerDirectory(env: NodeJS.ProcessEnv = process.env): boolean {
  const caller = env.INIT_CWD;
  if (env.npm_lifecycle_event !== 'ofm' || !caller) return false;
  if (caller !== process.cwd()) process.chdir(caller);
  prefix = 'pnpm -s ofm';
  // Our own child processes (bench runs) are started with explicit paths: they must not do it again.
  Reflect.deleteProperty(env, 'npm_lifecycle_event');
  return true;
}

/** The command that starts ofm the way the user did: `ofm`, or `pnpm -s ofm` under the root script. */
export function ofmCommand(): string {
  return prefix;
}

/** `arg` quoted for a POSIX shell when it needs it. */
export function shellQuote(arg: string): string {
  return /^[\w./:=@%+,-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", "'\\''")}'`;
}
