/** Shared by checkpoint and export loading (not part of the public API). */
import { CheckpointError, type tf } from '@ofm/tensor';
import type { ContinualDetector } from '../model/detector';

/**
 * Assign a loaded file's tensors to every parameter of a freshly built detector. A parameter the
 * file lacks disposes the detector and throws a `CheckpointError` ('missing') whose message
 * `missingMessage(name)` writes.
 */
export function assignWeights(
  detector: ContinualDetector,
  tensors: Readonly<Record<string, tf.Tensor>>,
  source: string,
  missingMessage: (name: string) => string,
): void {
  const weights: Record<string, tf.Tensor> = {};
  for (const name of detector.params.names()) {
    const t = tensors[name];
    if (!t) {
      detector.dispose();
      throw new CheckpointError('missing', source, missingMessage(name));
    }
    weights[name] = t;
  }
  detector.params.assign(weights);
}
