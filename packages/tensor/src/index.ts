export * from './tf';
export * from './rng';
export * from './params';
export * from './nn';
