import { DataError } from '@ofm/errors';

/**
 * One error type for every problem with data on disk or in memory: a missing folder, an empty
 * class, a corrupt image, a mask of the wrong size, a CSV without the expected columns. Its
 * message names the path and what was expected there, so the user can fix it without a stack
 * trace. A {@link DataError} of `@ofm/errors` (kind `'data'`), so code that handles data errors
 * of every package handles it too.
 */
export class DatasetError extends DataError {
  override readonly name: string = 'DatasetError';
  /**
   * @param message what is wrong and what was expected (the path is prepended)
   * @param path the file or folder at fault
   */
  constructor(
    message: string,
    readonly path: string,
  ) {
    super(`${path}: ${message}`);
  }
}
