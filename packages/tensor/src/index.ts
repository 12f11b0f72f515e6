export * from './tf';
export * from './rng';
export * from './params';
export * from './nn';
export * from './backend';
export * from './kernels';
export * from './linalg';
export * from './checkpoint';
export * from './webgpu';
export * from './reads';
// The error kinds of every package (from @ofm/errors), so that users of the tensor packages need one import.
export * from '@ofm/errors';
