import { OfmError } from '@ofm/errors';

/** What went wrong in an experiment's setup; see {@link ExperimentError.code}. */
export type ExperimentErrorCode =
  /** A method name that is not in `BENCH_METHODS`, or a list given twice. */
  | 'unknown-method'
  /** A benchmark spec (UNet spec JSON) or option value that cannot be used. */
  | 'bad-input'
  /** The PyTorch peer builds a model with another parameter count: nothing is timed. */
  | 'parameter-mismatch';

/**
 * An experiment refused to run (`code` says why); runtime failures of the model itself keep their
 * own error types. Its kind is `'config'` for an unknown method or a bad input (the user fixes the
 * value) and `'numeric'` for a peer whose model does not match ours (nothing the user typed is wrong).
 */
export class ExperimentError extends OfmError {
  override readonly name: string = 'ExperimentError';
  declare readonly code: ExperimentErrorCode;
  /**
   * @param code Why the experiment refused to run.
   * @param message One line naming the input and the fix.
   */
  constructor(code: ExperimentErrorCode, message: string) {
    super(code === 'parameter-mismatch' ? 'numeric' : 'config', message, { code });
  }
}
