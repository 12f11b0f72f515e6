export * from './tf';
export * from './rng';
export * from './params';
export * from './nn';
export * from './backend';
export * from './kernels';
export * from './linalg';
export * from './checkpoint';
