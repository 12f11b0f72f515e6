/**
 * `pnpm demo` ends with whatever started it. pnpm runs the script as `sh -c "… && node demo.ts"`;
 * when pnpm is killed (a `timeout`, a CI step's limit, a closed terminal), it takes the shell with
 * it but not the shell's children, and the server would serve on with nobody to stop it.
 */
import { readFileSync } from 'node:fs';

/** The parent of process `pid`, from /proc (Linux); null where that cannot be read. */
export function parentOf(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) state ppid …": comm may hold spaces and parentheses, the last ')' ends it.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    return Number.isInteger(ppid) && ppid > 0 ? ppid : null;
  } catch {
    return null;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Call `onGone` once when this process's parent or grandparent ends (pnpm, and the shell it runs
 * the script in), checked every `intervalMs`; the timer alone keeps nothing alive. Without /proc,
 * only the parent is watched (a process whose parent ends is handed to another: its ppid changes).
 * Returns a function that stops watching.
 */
export function exitWithParents(onGone: () => void, intervalMs = 500): () => void {
  const parent = process.ppid;
  const grandparent = parentOf(parent);
  const watched = [parent, grandparent].filter((p): p is number => p !== null && p > 1);
  const timer = setInterval(() => {
    if (process.ppid !== parent || watched.some((p) => !alive(p))) {
      clearInterval(timer);
      onGone();
    }
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
