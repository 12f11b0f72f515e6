/**
 * One writer per checkpoint directory: an advisory lock file beside it, `.<name>.ofm-lock`, that
 * names the process holding it (PID, host, purpose, start time). Node only.
 *
 * - A second process asking for the lock is refused with a 'locked' CheckpointError naming the
 *   holder.
 * - A lock whose process is gone (killed, crashed) on this host is stale: it is taken over, with a
 *   notice. A lock held from another host cannot be checked and is never taken over.
 * - Within one process the lock is counted: asking again while holding it succeeds, and the file
 *   goes with the last release, or when the process exits.
 *
 * Holding the lock makes it safe to finish what a killed writer left, so acquiring also repairs the
 * directory: an interrupted swap is completed and dead writers' temporary directories go.
 */
import type * as FsSync from 'node:fs';
import { CheckpointError } from './format';
import { type NodeModules, ioError, node, processAlive, repairCheckpoint, siblings } from './node';

/** What the lock file records about its holder. */
export interface LockHolder {
  pid: number;
  host: string;
  /** What the holder is doing, e.g. 'ofm train'. */
  purpose: string;
  /** ISO time the lock was taken. */
  since: string;
  /** Random token that tells this holding apart from a later one of a reused PID. */
  token: string;
}

/** Options of {@link acquireCheckpointLock}. */
export interface LockOptions {
  /** What the holder is doing, shown to processes that are refused (default 'writing'). */
  purpose?: string;
  /** Told, in one sentence, when a stale lock is taken over. */
  onNotice?: (message: string) => void;
}

/** A held checkpoint lock. */
export interface CheckpointLock {
  /** The checkpoint directory (absolute). */
  readonly dir: string;
  /** The lock file beside it. */
  readonly file: string;
  /** Give this hold up; the file goes with the process's last hold. Safe to call twice. */
  release(): Promise<void>;
}

interface Held {
  file: string;
  token: string;
  count: number;
}

/** Locks this process holds, by checkpoint directory. */
const held = new Map<string, Held>();
let exitHookInstalled = false;

/** Unreadable lock files (being written, or damaged) are re-read for about this long. */
const UNREADABLE_RETRY_MS = 1000;
const ATTEMPTS = 20;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The holder in a lock file: null when there is no file, 'unreadable' when it is not a lock record. */
async function readHolder(m: NodeModules, file: string): Promise<LockHolder | null | 'unreadable'> {
  let text: string;
  try {
    text = await m.fs.readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw ioError(file, 'read the lock file', e);
  }
  try {
    const h = JSON.parse(text) as LockHolder;
    if (Number.isInteger(h.pid) && typeof h.host === 'string' && typeof h.token === 'string') return h;
  } catch {
    // fall through
  }
  return 'unreadable';
}

/** Create the lock file for `me`; false when one exists. */
async function tryCreate(m: NodeModules, file: string, me: LockHolder): Promise<boolean> {
  try {
    await m.fs.writeFile(file, `${JSON.stringify(me, null, 2)}\n`, { flag: 'wx' });
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw ioError(file, 'create the lock file', e);
  }
}

/**
 * Remove the stale lock of `stale`, unless another process replaced it meanwhile: the file is first
 * renamed to a private name (atomic), then removed only if it is the one judged stale, else put back.
 */
async function takeOver(m: NodeModules, file: string, stale: LockHolder, token: string): Promise<boolean> {
  const aside = `${file}.stale-${token}`;
  try {
    await m.fs.rename(file, aside);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw ioError(file, 'take over the stale lock file', e);
  }
  const moved = await readHolder(m, aside);
  if (moved !== null && moved !== 'unreadable' && moved.token === stale.token) {
    await m.fs.rm(aside, { force: true });
    return true;
  }
  await m.fs.link(aside, file).catch(() => {}); // a newer holder's lock: put it back unless the place is taken
  await m.fs.rm(aside, { force: true });
  return false;
}

function describe(h: LockHolder): string {
  return `process ${h.pid} on ${h.host} (${h.purpose || 'writing'}, since ${h.since})`;
}

function refused(target: string, file: string, h: LockHolder, host: string): CheckpointError {
  const fix =
    h.host === host
      ? h.pid === process.pid
        ? 'this very process holds it through another copy of @ofm/tensor; load one copy only'
        : `wait for it to finish or stop it (if PID ${h.pid} is not a one-for-more process, the PID was reused: delete ${file})`
      : `wait for it to finish; if no process on ${h.host} writes it any more, delete ${file}`;
  return new CheckpointError(
    'locked',
    target,
    `${target} is being written by ${describe(h)}; two writers would corrupt it, so this one stops: ${fix}`,
  );
}

function installExitHook(fsSync: typeof FsSync): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // process.exit() and fatal errors skip `finally` blocks: drop our lock files on the way out.
  process.on('exit', () => {
    for (const h of held.values()) {
      try {
        if (fsSync.readFileSync(h.file, 'utf8').includes(h.token)) fsSync.unlinkSync(h.file);
      } catch {
        // already gone
      }
    }
  });
}

/**
 * Take the write lock of checkpoint directory `dir` (which need not exist yet), waiting for
 * nothing: a lock held by a running process is refused at once with a 'locked' CheckpointError that
 * names the holder; a stale one is taken over (`onNotice` says so). Release it when done.
 */
export async function acquireCheckpointLock(dir: string, options: LockOptions = {}): Promise<CheckpointLock> {
  const m = await node();
  const [os, fsSync] = await Promise.all([import('node:os'), import('node:fs')]);
  const s = siblings(m.path, dir);
  const handle = (entry: Held): CheckpointLock => {
    let released = false;
    return {
      dir: s.target,
      file: s.lock,
      release: async () => {
        if (released) return;
        released = true;
        entry.count -= 1;
        if (entry.count > 0) return;
        held.delete(s.target);
        const h = await readHolder(m, s.lock);
        if (h !== null && h !== 'unreadable' && h.token === entry.token) await m.fs.rm(s.lock, { force: true });
      },
    };
  };
  const mine = held.get(s.target);
  if (mine) {
    mine.count += 1;
    return handle(mine);
  }
  try {
    await m.fs.mkdir(s.parent, { recursive: true });
  } catch (e) {
    throw ioError(s.target, 'create the parent directory', e);
  }
  const me: LockHolder = {
    pid: process.pid,
    host: os.hostname(),
    purpose: options.purpose ?? 'writing',
    since: new Date().toISOString(),
    token: m.crypto.randomBytes(8).toString('hex'),
  };
  let unreadableSince: number | null = null;
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    if (await tryCreate(m, s.lock, me)) {
      const entry: Held = { file: s.lock, token: me.token, count: 1 };
      held.set(s.target, entry);
      installExitHook(fsSync);
      try {
        await repairCheckpoint(m, s);
      } catch (e) {
        await handle(entry).release();
        throw ioError(s.target, 'repair the checkpoint directory', e);
      }
      return handle(entry);
    }
    const other = await readHolder(m, s.lock);
    if (other === null) continue; // released meanwhile
    if (other === 'unreadable') {
      unreadableSince ??= Date.now();
      if (Date.now() - unreadableSince > UNREADABLE_RETRY_MS) {
        throw new CheckpointError(
          'locked',
          s.target,
          `${s.target} has a lock file ${s.lock} that is not a lock record; if no process is writing the checkpoint, delete it`,
        );
      }
      await sleep(50); // its writer may be between creating and filling it
      attempt -= 1;
      continue;
    }
    if (other.host !== me.host || processAlive(other.pid)) throw refused(s.target, s.lock, other, me.host);
    if (await takeOver(m, s.lock, other, me.token)) {
      options.onNotice?.(`took over the stale lock of ${describe(other)} on ${s.target}: that process is no longer running`);
    }
  }
  throw new CheckpointError('locked', s.target, `${s.target}: could not take the lock ${s.lock}: other processes keep taking it`);
}
