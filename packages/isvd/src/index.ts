/**
 * @ofm/isvd: streaming low-rank factorisation of layer representations with bounded memory
 * (iterative SVD), its naive stack-everything counterpart, and tools to compare them.
 */
export { type BlockInput, asBlock, sumOfSquares } from './block';
export { type LowRankFactor, type RepresentationFactorizer, leadingColumns } from './factor';
export {
  type IsvdMethod,
  type IncrementalSvdOptions,
  type IsvdMemoryBoundInput,
  type IsvdMemoryBound,
  IncrementalSvd,
} from './isvd';
export { type StackedSvdOptions, StackedSvd } from './stacked';
export { type SubspaceAgreement, subspaceAgreement, maxRelativeError } from './agreement';
export { type SyntheticRepresentationOptions, SyntheticRepresentation } from './synthetic';
