/**
 * The one tfjs namespace every one-for-more package uses. `@tensorflow/tfjs` (not tfjs-core alone)
 * because its bundle registers the gradient functions and chained tensor methods that training
 * needs; importing it from a single place keeps one copy of the engine in a process.
 */
import * as tf from '@tensorflow/tfjs';

export { tf };
export type Tensor = tf.Tensor;
export type Tensor1D = tf.Tensor1D;
export type Tensor2D = tf.Tensor2D;
export type Tensor3D = tf.Tensor3D;
export type Tensor4D = tf.Tensor4D;
export type Variable = tf.Variable;
