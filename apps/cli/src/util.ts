/** Helpers the `ofm` commands share: option parsing, progress on stderr, Ctrl-C and SIGTERM handling. */
import { rmSync } from 'node:fs';
import { isAbortError } from '@ofm/errors';
import { CliError, EXIT } from './errors';

/** The output options most commands share. */
export interface CommonCliOptions {
  /** tfjs backend name (`--backend`). */
  backend?: string;
  /** Machine-readable result on stdout (`--json`). */
  json?: boolean;
  /** No progress on stderr (`--quiet`). */
  quiet?: boolean;
}

/** Parse an integer option; a clear error names the flag and the accepted range. */
export function integer(flag: string, value: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const n = /^\d+$/.test(value.trim()) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new CliError(`${flag} must be an integer ${max < Number.MAX_SAFE_INTEGER ? `in [${min}, ${max}]` : `>= ${min}`}, got "${value}"`);
  }
  return n;
}

/** Parse a positive number option. */
export function positiveNumber(flag: string, value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new CliError(`${flag} must be a positive number, got "${value}"`);
  return n;
}

function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  if (seconds < 90) return `${Math.round(seconds)} s`;
  const m = Math.floor(seconds / 60);
  return m < 90 ? `${m} min ${Math.round(seconds - 60 * m)} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

/**
 * Progress lines on stderr: one line rewritten in place on a terminal, else a line every few
 * seconds (logs stay readable); the final state of every phase is always printed.
 */
export class Progress {
  private readonly tty = process.stderr.isTTY === true;
  private lastWrite = 0;
  private lastKey = '';
  private phaseStart = Date.now();
  /** `done` when the phase started here (a resumed phase starts part-way). */
  private phaseDone = 0;
  private open = false;

  constructor(
    private readonly prefix: string,
    private readonly quiet = false,
  ) {}

  /** Report `done` of `total` for a phase; `key` identifies the phase (its start resets the ETA). */
  update(key: string, label: string, done: number, total: number, extra = ''): void {
    if (this.quiet) return;
    const now = Date.now();
    if (key !== this.lastKey) {
      if (this.open) process.stderr.write('\n');
      this.open = false;
      this.lastKey = key;
      this.phaseStart = now;
      this.phaseDone = Math.max(0, done - 1);
      this.lastWrite = 0;
    }
    const finished = done >= total;
    if (!finished && now - this.lastWrite < (this.tty ? 200 : 5000)) return;
    this.lastWrite = now;
    const elapsed = (now - this.phaseStart) / 1000;
    const rate = done > this.phaseDone ? elapsed / (done - this.phaseDone) : Number.NaN;
    const eta = done > 0 && !finished ? ` · ${duration(rate * (total - done))} left` : '';
    const width = 24;
    const filled = total > 0 ? Math.round((width * Math.min(done, total)) / total) : width;
    const bar = this.tty ? `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ` : '';
    const line = `${this.prefix}: ${label} ${bar}${done}/${total}${extra ? ` ${extra}` : ''} · ${duration(elapsed)}${eta}`;
    if (this.tty) {
      process.stderr.write(`\r\x1b[2K${line}`);
      this.open = !finished;
      if (finished) process.stderr.write('\n');
    } else {
      process.stderr.write(`${line}\n`);
    }
  }

  /** A message on its own line. */
  note(message: string): void {
    if (this.quiet) return;
    this.warn(message);
  }

  /** A message on its own line that even quiet progress prints (something went wrong or was repaired). */
  warn(message: string): void {
    if (this.open) process.stderr.write('\n');
    this.open = false;
    process.stderr.write(`${this.prefix}: ${message}\n`);
  }
}

/** The exit code of a process stopped by `signal` (128 + its number, as shells report it). */
function signalExitCode(signal: NodeJS.Signals): number {
  return signal === 'SIGTERM' ? EXIT.terminated : EXIT.interrupted;
}

/**
 * Run `work` with an AbortSignal that the first Ctrl-C (SIGINT) or SIGTERM aborts; a second one
 * exits at once (130 for SIGINT, 143 for SIGTERM). Handlers are removed afterwards. An abort error
 * that `work` throws carries the signal (see {@link interruptExitCode}).
 */
export async function withInterrupts<T>(work: (signal: AbortSignal) => Promise<T>, onFirst?: (signal: NodeJS.Signals) => void): Promise<T> {
  const controller = new AbortController();
  let received: NodeJS.Signals | undefined;
  const handler = (signal: NodeJS.Signals) => {
    if (received) process.exit(signalExitCode(signal));
    received = signal;
    onFirst?.(signal);
    controller.abort();
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  try {
    return await work(controller.signal);
  } catch (err) {
    if (isAbort(err) && received) Object.assign(err as Error, { signal: received });
    throw err;
  } finally {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  }
}

/** True for the error thrown when a long job stops on an abort signal (an `AbortError`, ours or the DOM's). */
export function isAbort(err: unknown): boolean {
  return isAbortError(err);
}

/** The exit code for an abort error from {@link withInterrupts}: 143 after SIGTERM, else 130. */
export function interruptExitCode(err: unknown): number {
  const signal = (err as { signal?: NodeJS.Signals }).signal;
  return signal ? signalExitCode(signal) : EXIT.interrupted;
}

/**
 * Until the returned function is called, Ctrl-C (SIGINT) or SIGTERM removes `path` (a temporary
 * file or folder) and exits with 130 or 143: a command stopped while it writes leaves nothing
 * half-written behind.
 */
export function removeOnInterrupt(path: string): () => void {
  const handler = (signal: NodeJS.Signals) => {
    rmSync(path, { recursive: true, force: true });
    process.exit(signalExitCode(signal));
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return () => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
}
