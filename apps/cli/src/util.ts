/** Helpers the `ofm` commands share: option parsing, progress on stderr, Ctrl-C handling. */
import { CliError } from './errors';

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
      this.lastWrite = 0;
    }
    const finished = done >= total;
    if (!finished && now - this.lastWrite < (this.tty ? 200 : 5000)) return;
    this.lastWrite = now;
    const elapsed = (now - this.phaseStart) / 1000;
    const eta = done > 0 && !finished ? ` · ${duration((elapsed / done) * (total - done))} left` : '';
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
    if (this.open) process.stderr.write('\n');
    this.open = false;
    process.stderr.write(`${this.prefix}: ${message}\n`);
  }
}

/**
 * Run `work` with an AbortSignal that the first Ctrl-C (SIGINT) or SIGTERM aborts; a second one
 * exits at once. Handlers are removed afterwards.
 */
export async function withInterrupts<T>(work: (signal: AbortSignal) => Promise<T>, onFirst?: () => void): Promise<T> {
  const controller = new AbortController();
  const handler = () => {
    if (controller.signal.aborted) process.exit(130);
    onFirst?.();
    controller.abort();
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  try {
    return await work(controller.signal);
  } finally {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  }
}

/** True for the error thrown when a long job stops on an abort signal. */
export function isAbort(err: unknown): boolean {
  return err instanceof Error && err.name === 'AbortError';
}
