/**
 * @ofm/detector for browsers and workers: everything that needs no Node API. The detector and its
 * detection path (maps, calibration, figures as SVG strings and RGB buffers), loading checkpoints and
 * exported models from URLs, and the report's types for dashboards. (Training runs with reports,
 * saving, exporting and `TfjsModelExtractor` from disk live in the main, Node entry point.)
 */
export * from './config/config';
export * from './config/config-schema';
export * from './model/features';
export * from './model/maps';
export * from './model/calibration';
export * from './report/figures';
export * from './model/detector';
export * from './model/segmenter';
export * from './model/evaluate';
export * from './io/export-read';
export { DETECTOR_FORMAT, DETECTOR_FORMAT_VERSION, type DetectorMeta, type LoadOverrides, loadDetector } from './io/persist';
export * from './report/report-format';
