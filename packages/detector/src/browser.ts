/**
 * @ofm/detector for browsers and workers: everything that needs no Node API. The detector and its
 * detection path (maps, calibration, figures as SVG strings and RGB buffers), loading checkpoints and
 * exported models from URLs, and the report's types for dashboards. (Training runs with reports,
 * saving, exporting and `TfjsModelExtractor` from disk live in the main, Node entry point.)
 */
export * from './config';
export * from './config-schema';
export * from './features';
export * from './maps';
export * from './calibration';
export * from './figures';
export * from './detector';
export * from './evaluate';
export * from './exported';
export { DETECTOR_FORMAT, DETECTOR_FORMAT_VERSION, type DetectorMeta, type LoadOverrides, loadDetector } from './persist';
export * from './report-format';
