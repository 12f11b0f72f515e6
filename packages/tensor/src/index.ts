export * from './tf';
