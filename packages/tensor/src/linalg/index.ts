/**
 * Linear algebra for one-for-more on plain typed arrays: thin SVD, symmetric eigendecomposition,
 * orthonormalisation, gradient projection and subspace comparison.
 */
export {
  type Matrix,
  type MatrixData,
  type MatrixMultiplyOptions,
  matrix,
  matrixZeros,
  matrixIdentity,
  matrixFromRows,
  matrixToRows,
  matrixTranspose,
  matrixToFloat64,
  matrixColumn,
  matrixSliceColumns,
  frobeniusNorm,
  matrixMultiply,
} from './matrix';
export { type SvdOptions, type SvdResult, svd, energyRank, gramMatrix } from './svd';
export { type SymmetricEigenOptions, type SymmetricEigenResult, symmetricEigen } from './eigen';
export {
  type OrthonormalizeOptions,
  type OrthonormalizeResult,
  type GradientLayout,
  type ProjectOutOptions,
  orthonormalize,
  projectOut,
} from './orthonormalize';
export { subspaceCosines } from './subspace';
export { projectGradient } from './project-gradient';
