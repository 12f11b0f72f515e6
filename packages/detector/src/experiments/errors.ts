/** What went wrong in an experiment's setup; see {@link ExperimentError.code}. */
export type ExperimentErrorCode =
  /** A method name that is not in `BENCH_METHODS`, or a list given twice. */
  | 'unknown-method'
  /** A benchmark spec (UNet spec JSON) or option value that cannot be used. */
  | 'bad-input'
  /** The PyTorch peer builds a model with another parameter count: nothing is timed. */
  | 'parameter-mismatch';

/**
 * An experiment refused its input before running anything (`code` says why); runtime failures of
 * the model itself keep their own error types.
 */
export class ExperimentError extends Error {
  override readonly name = 'ExperimentError';
  /**
   * @param code Why the experiment refused to run.
   * @param message One line naming the input and the fix.
   */
  constructor(
    readonly code: ExperimentErrorCode,
    message: string,
  ) {
    super(message);
  }
}
