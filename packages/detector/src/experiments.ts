/**
 * @ofm/detector/experiments: the experiments behind `ofm bench`, callable from code.
 *
 * - The continual benchmark (the paper's method table): the methods ({@link BENCH_METHODS}), run
 *   plans, per-run summaries, statistics over seeds, the comparisons the paper's claims rest on,
 *   and the table as JSON and Markdown. {@link runContinualBenchmark} runs a whole plan in this
 *   process; `ofm bench continual` runs each run in its own child process.
 * - The speed benchmark: {@link runPerfBenchmark} times the training step, DDIM reconstruction and
 *   every conv2d of a UNet spec, optionally interleaved with a peer (the PyTorch twin), with the
 *   ratio and load statistics; {@link formatPerfTable} renders the result.
 *
 * Node only. Importing this entry loads no tensors (tfjs and the model packages load when a run
 * starts), so a command line can list the methods at once.
 */
export * from './experiments/continual-bench';
export * from './experiments/errors';
export * from './experiments/perf';
