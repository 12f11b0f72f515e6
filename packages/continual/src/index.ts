/**
 * @ofm/continual: gradient projection memory (GPM) for continual learning — representation capture
 * through layer taps, bounded-memory factorisation (iSVD), basis growth, and projection of
 * gradients or of whole optimiser updates.
 */
export {
  type LayerSelector,
  type ThresholdQuery,
  type ThresholdSpec,
  type ThresholdRule,
  thresholdRules,
  resolveThreshold,
  checkThreshold,
  isSelected,
} from './selection';
export { type BasisGrowth, growBasis } from './criterion';
export {
  type FactorizerKind,
  type GpmOptions,
  type LayerBasisRecord,
  type ConsolidationReport,
  type LayerMemoryReport,
  type GpmMeta,
  type ProjectionMode,
  type ProjectionHook,
  type ProjectionHooks,
  basisTensorName,
  GradientProjectionMemory,
} from './gpm';
