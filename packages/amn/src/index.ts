export {
  type AmnConfig,
  type HintConvSpec,
  type HintGeometry,
  DEFAULT_AMN_CONFIG,
  gridSize,
  hintConvSpecs,
  hintGeometry,
  resolveAmnConfig,
} from './config';
export {
  MASK_BLOCKED,
  clearNeighbourMaskCache,
  neighbourMask,
  neighbourMaskBits,
  neighbourMaskCacheSize,
} from './mask';
export { type MaskedAttentionOptions, maskedSelfAttention } from './attention';
export { stopGradient } from './stop-gradient';
export { type Amn, type AmnCondition, type AmnForwardOptions, AMN_SCOPE, clearAmnCaches, createAmn } from './amn';
export { type FeatureSpread, featureDistance, featureSpread, pixelMaskToTokens } from './diagnostics';
