/**
 * The error kinds of one-for-more. Every package throws these for failures a user can act on, so
 * that an application (the `ofm` command line, a server, a script) can tell them apart by class
 * or by `kind` instead of by message text:
 *
 * - {@link ConfigError}: an option, a config field, a preset or a flag has a value that is not
 *   allowed. The fix is to change that value.
 * - {@link DataError}: an input file or dataset is missing, unreadable or not what it should be.
 *   The fix is in the data.
 * - `CheckpointError` (in `@ofm/tensor`, kind `'checkpoint'`): a checkpoint cannot be written or
 *   read: missing, damaged, of another format, locked.
 * - {@link NumericError}: a computation met NaN or infinite values, or shapes the data made
 *   inconsistent.
 * - {@link AbortError}: the work was cancelled through an `AbortSignal`.
 *
 * Programmer errors (a broken invariant, a kernel handed a tensor of the wrong backend, an argument
 * outside its documented domain in a low-level API) stay plain `Error`, `RangeError` or
 * `TypeError`: they mean the calling code is wrong, not the user's input.
 *
 * @packageDocumentation
 */

/** Who can fix an error; the `ofm` command line turns the kind into its exit code. */
export type OfmErrorKind = 'config' | 'data' | 'checkpoint' | 'numeric' | 'aborted';

/** Every kind, in a fixed order. */
export const OFM_ERROR_KINDS: readonly OfmErrorKind[] = ['config', 'data', 'checkpoint', 'numeric', 'aborted'];

/** Options of the error constructors. */
export interface OfmErrorOptions {
  /** A stable code more specific than the kind (the default is the kind itself). */
  code?: string;
  /** The error this one explains (kept as `cause`). */
  cause?: unknown;
}

/**
 * Marks every {@link OfmError}, so that {@link isOfmError} also recognises errors made by another
 * copy of this package (an ESM and a CJS copy loaded side by side).
 */
const BRAND: unique symbol = Symbol.for('@ofm/errors.OfmError');

/**
 * The base of every one-for-more error. Not thrown itself: throw one of its kinds. Its message
 * is written for the user (it names the file, value or option at fault and the fix), `kind` says
 * who can fix it and `code` is a stable machine-readable reason that does not change when the
 * message is reworded.
 */
export abstract class OfmError extends Error {
  /** Who can fix it. */
  readonly kind: OfmErrorKind;
  /** A stable machine-readable reason: the kind, or something more specific (a `CheckpointError` has `'truncated'`, `'checksum'`, ...). */
  readonly code: string;

  /**
   * @param kind who can fix it
   * @param message what is wrong and how to fix it
   * @param options a more specific code, the cause
   */
  protected constructor(kind: OfmErrorKind, message: string, options?: OfmErrorOptions) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.kind = kind;
    this.code = options?.code ?? kind;
  }
}
Object.defineProperty(OfmError.prototype, BRAND, { value: true });

/** An option, a config field, a preset or a flag has a value that is not allowed; the message names it and what is allowed. */
export class ConfigError extends OfmError {
  override readonly name: string = 'ConfigError';
  /**
   * @param message the value at fault and what is allowed
   * @param options a more specific code, the cause
   */
  constructor(message: string, options?: OfmErrorOptions) {
    super('config', message, options);
  }
}

/** An input file or dataset is missing, unreadable or not what it should be; the message names it and what was expected. */
export class DataError extends OfmError {
  override readonly name: string = 'DataError';
  /**
   * @param message the input at fault and what was expected
   * @param options a more specific code, the cause
   */
  constructor(message: string, options?: OfmErrorOptions) {
    super('data', message, options);
  }
}

/** A computation met NaN or infinite values (a diverged training step, a corrupt input), or shapes the data made inconsistent. */
export class NumericError extends OfmError {
  override readonly name: string = 'NumericError';
  /**
   * @param message what was not finite or did not match, and where
   * @param options a more specific code, the cause
   */
  constructor(message: string, options?: OfmErrorOptions) {
    super('numeric', message, options);
  }
}

/**
 * The work was cancelled through an `AbortSignal`. Its name is `'AbortError'`, as the
 * `DOMException` that `AbortSignal.throwIfAborted()` and `fetch` throw, so code that tests
 * `err.name === 'AbortError'` treats both alike ({@link isAbortError} does).
 */
export class AbortError extends OfmError {
  override readonly name: string = 'AbortError';
  /**
   * @param message defaults to `'interrupted'`
   * @param options a more specific code, the cause
   */
  constructor(message = 'interrupted', options?: OfmErrorOptions) {
    super('aborted', message, options);
  }
}

/** True for an {@link OfmError}, also one made by another copy of this package. */
export function isOfmError(err: unknown): err is OfmError {
  return err instanceof OfmError || (typeof err === 'object' && err !== null && (err as { [BRAND]?: unknown })[BRAND] === true);
}

/** The kind of an {@link OfmError}; undefined for any other value. */
export function errorKind(err: unknown): OfmErrorKind | undefined {
  return isOfmError(err) ? err.kind : undefined;
}

/** True for a cancellation: an {@link AbortError}, or any error named `'AbortError'` (the `DOMException` of `AbortSignal`). */
export function isAbortError(err: unknown): boolean {
  return errorKind(err) === 'aborted' || (typeof err === 'object' && err !== null && (err as { name?: unknown }).name === 'AbortError');
}

/** Throw an {@link AbortError} when `signal` has fired. */
export function throwIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw new AbortError();
}
