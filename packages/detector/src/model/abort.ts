import { AbortError } from '@ofm/tensor';

export { throwIfAborted } from '@ofm/tensor';

/** The error every long detector operation stops with when its `AbortSignal` fires: an `AbortError` (name `'AbortError'`, message `'interrupted'`). */
export function abortError(): AbortError {
  return new AbortError();
}
