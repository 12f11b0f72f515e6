/** The error every long detector operation stops with when its `AbortSignal` fires. */
export function abortError(): Error {
  const err = new Error('interrupted');
  err.name = 'AbortError';
  return err;
}

/** Throw {@link abortError} if `signal` has fired. */
export function throwIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw abortError();
}
