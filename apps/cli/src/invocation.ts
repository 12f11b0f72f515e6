/**
 * How the user started `ofm`, so that the commands we suggest can be pasted back as they are.
 */

const prefix = 'ofm';

/** The command that starts ofm. */
export function ofmCommand(): string {
  return prefix;
}

/** `arg` quoted for a POSIX shell when it needs it. */
export function shellQuote(arg: string): string {
  return /^[\w./:=@%+,-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", "'\\''")}'`;
}
