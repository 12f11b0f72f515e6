/**
 * `stopGradient`, which tfjs lacks: the identity in the forward pass, a zero gradient in the
 * backward pass. Used for the AMN's loss target, whose gradient made the hint encoder collapse to
 * an input-independent output at small scale (`/work/shared/notes/small-scale-facts.md`).
 */
import { tf } from '@ofm/tensor';

const blockGradient = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const x = args[0] as tf.Tensor;
  return { value: tf.clone(x), gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy) };
}) as (x: tf.Tensor) => tf.Tensor;

/**
 * A copy of `x` through which no gradient flows: `tf.grads`/`variableGrads`/`minimize` see the
 * result as a constant, so whatever computed `x` gets no gradient from what is done with it.
 * (The backward pass still visits the ops that produced `x`, with zeros.)
 */
export function stopGradient<T extends tf.Tensor>(x: T): T {
  return blockGradient(x) as T;
}
