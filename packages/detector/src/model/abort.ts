import { AbortError } from '@ofm/tensor';

export { throwIfAborted } from '@ofm/tensor';

/** The error every long detector operation stops with when its `AbortSignal` fires: an `AbortError` (name `'AbortError'`, message `'interrupted'`). */
export function abortError(): AbortError {
  return new AbortError();
}

/** Let pending events (Ctrl-C handlers, progress output) run: setImmediate in Node (no 4 ms clamp), a zero timeout in browsers. */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => (typeof setImmediate === 'function' ? setImmediate(resolve) : setTimeout(resolve, 0)));
}
