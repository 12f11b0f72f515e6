/**
 * The one tfjs namespace every one-for-more package uses. `@tensorflow/tfjs` (not tfjs-core alone)
 * because its bundle registers the gradient functions and chained tensor methods that training
 * needs; importing it from a single place keeps one copy of the engine in a process.
 */
import * as tf from '@tensorflow/tfjs';

export { tf };
/** A tfjs tensor of any rank and dtype. */
export type Tensor = tf.Tensor;
/** A rank-1 tfjs tensor, shape [n]. */
export type Tensor1D = tf.Tensor1D;
/** A rank-2 tfjs tensor, shape [rows, cols]. */
export type Tensor2D = tf.Tensor2D;
/** A rank-3 tfjs tensor, e.g. one image as [H, W, C]. */
export type Tensor3D = tf.Tensor3D;
/** A rank-4 tfjs tensor, e.g. an image batch as [N, H, W, C]. */
export type Tensor4D = tf.Tensor4D;
/** A mutable tfjs tensor: `assign` replaces its value, and `tf.tidy` does not dispose it. */
export type Variable = tf.Variable;
