/**
 * Conv2D geometry shared by the backprop kernels: tfjs's own `computeConv2DInfo` (so 'same',
 * 'valid', a number and explicit per-side pads all resolve exactly as the forward op did), plus
 * the checks for what the wasm kernels support (NHWC, dilation 1).
 */
import { tf } from '../tf';

/** Resolved geometry of one NHWC conv2d (the forward direction). */
export interface ConvGeometry {
  batch: number;
  inHeight: number;
  inWidth: number;
  inChannels: number;
  outHeight: number;
  outWidth: number;
  outChannels: number;
  filterHeight: number;
  filterWidth: number;
  strideHeight: number;
  strideWidth: number;
  padTop: number;
  padBottom: number;
  padLeft: number;
  padRight: number;
}

/** The attrs Conv2DBackpropFilter / Conv2DBackpropInput receive (plus a defensive `dilations`). */
export interface ConvBackpropAttrs {
  strides: number | [number, number];
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dataFormat?: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  dilations?: number | [number, number];
}

/**
 * Resolve the geometry of the forward conv with input `xShape` and filter `filterShape`
 * ([kh, kw, inChannels, outChannels]). Throws a clear error for NCHW or dilation > 1.
 */
export function convGeometry(
  kernelName: string,
  xShape: number[],
  filterShape: number[],
  attrs: ConvBackpropAttrs,
): ConvGeometry {
  if (attrs.dataFormat != null && attrs.dataFormat !== 'NHWC') {
    throw new Error(
      `${kernelName} (@ofm/tensor wasm kernel): dataFormat '${attrs.dataFormat}' is not supported; ` +
        `the wasm backend runs NHWC only. Use dataFormat 'NHWC' (channels last).`,
    );
  }
  const dilations = attrs.dilations ?? 1;
  const [dh, dw] = typeof dilations === 'number' ? [dilations, dilations] : dilations;
  if (dh !== 1 || dw !== 1) {
    throw new Error(
      `${kernelName} (@ofm/tensor wasm kernel): dilation ${dh}x${dw} is not supported; ` +
        'only dilation 1 has a gradient in tfjs. Use dilations: 1.',
    );
  }
  const info = tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
    false,
    'channelsLast',
  );
  return {
    batch: info.batchSize,
    inHeight: info.inHeight,
    inWidth: info.inWidth,
    inChannels: info.inChannels,
    outHeight: info.outHeight,
    outWidth: info.outWidth,
    outChannels: info.outChannels,
    filterHeight: info.filterHeight,
    filterWidth: info.filterWidth,
    strideHeight: info.strideHeight,
    strideWidth: info.strideWidth,
    padTop: info.padInfo.top,
    padBottom: info.padInfo.bottom,
    padLeft: info.padInfo.left,
    padRight: info.padInfo.right,
  };
}

/** Throw unless `shape` equals `expected` (a caller passed inconsistent dy/x/filter shapes). */
export function assertShape(kernelName: string, what: string, shape: number[], expected: number[]): void {
  if (shape.length !== expected.length || shape.some((d, i) => d !== expected[i])) {
    throw new Error(
      `${kernelName} (@ofm/tensor wasm kernel): ${what} has shape [${shape.join(', ')}] but the conv ` +
        `geometry needs [${expected.join(', ')}]`,
    );
  }
}
