/**
 * A user-written backbone: a small frozen convolutional network whose two stages give the feature
 * maps the detector compares between an image and its reconstruction. Its weights are drawn from
 * a seed (random convolutional features already separate textures well); load trained weights
 * instead in the same shape, or use `TfjsModelExtractor` for a tfjs model saved on disk.
 */
import type { FeatureExtractor } from '@ofm/detector';
import { tf } from '@ofm/tensor';

export class RandomConvBackbone implements FeatureExtractor {
  readonly name = 'random-conv';
  /** How many batches went through the backbone (to show that the detector uses it). */
  calls = 0;
  private readonly stage1: tf.Tensor4D;
  private readonly stage2: tf.Tensor4D;

  constructor(seed: number, width = 16) {
    // He-style scale keeps the features' magnitude through the ReLUs.
    this.stage1 = tf.randomNormal([3, 3, 3, width], 0, Math.sqrt(2 / 27), 'float32', seed);
    this.stage2 = tf.randomNormal([3, 3, width, 2 * width], 0, Math.sqrt(2 / (9 * width)), 'float32', seed + 1);
  }

  /** `[N, H, W, 3]` in [0, 1] -> full-resolution and half-resolution feature maps. Runs inside tf.tidy. */
  extract(images: tf.Tensor4D): tf.Tensor4D[] {
    this.calls += 1;
    const f1 = tf.relu(tf.conv2d(images, this.stage1, 1, 'same'));
    const f2 = tf.relu(tf.conv2d(tf.avgPool(f1, 2, 2, 'same'), this.stage2, 1, 'same'));
    return [f1, f2];
  }

  dispose(): void {
    tf.dispose([this.stage1, this.stage2]);
  }
}
