/**
 * @ofm/diffusion: noise schedules, the ADM/latent-diffusion UNet with a control input, parameter
 * groups for continual learning, AdamW/EMA, the DDPM training step, the training loop (`fit`) and
 * DDIM reconstruction. Images are NHWC float32 in [-1, 1].
 */
export * from './config';
export * from './schedule';
export * from './unet';
export * from './groups';
export * from './adamw';
export * from './ema';
export * from './trainer';
export * from './fit';
export * from './ddim';
export * from './cost';
