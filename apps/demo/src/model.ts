/**
 * Loading an exported model (`ofm export CKPT --out DIR`) and the run report it carries: from a URL
 * (the folder served beside the app, or any other), or from a folder the user picks on disk (read
 * through a `fetch` that answers from the picked files, so both paths share one loader).
 */
import {
  type ContinualDetector,
  type ContinualReport,
  EXPORT_REPORT_DIR,
  type ExportMeta,
  REPORT_FORMAT_VERSION,
  loadExportedDetector,
} from '@ofm/detector/browser';

/** Where a model comes from. */
export type ModelSource = { kind: 'url'; url: string } | { kind: 'folder'; name: string; files: Map<string, File> };

/** A loaded model, its run report (when the export carries one) and the sample-heatmap figure. */
export interface LoadedModel {
  source: ModelSource;
  /** How to name the source to the user. */
  label: string;
  detector: ContinualDetector;
  meta: ExportMeta;
  report: ContinualReport | null;
  /** URL of the report's sample-heatmap grid, or null. */
  samplesFigure: string | null;
}

/** The model URL in the page URL (`?model=`), or the folder served beside the app. */
export function modelUrlFrom(search: string): string {
  return new URLSearchParams(search).get('model') ?? 'model/';
}

/** A picked folder (`<input webkitdirectory>`): its name and files by path inside it. */
export function folderSource(files: FileList): ModelSource {
  const byPath = new Map<string, File>();
  let name = 'folder';
  for (const file of Array.from(files)) {
    const [top, ...rest] = file.webkitRelativePath.split('/');
    name = top ?? name;
    byPath.set(rest.join('/'), file);
  }
  return { kind: 'folder', name, files: byPath };
}

/** A fetch over a picked folder: `<name>/<path>` answers with that file, anything else is a 404. */
function folderFetch(source: Extract<ModelSource, { kind: 'folder' }>): typeof fetch {
  const prefix = `${source.name}/`;
  return async (input) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    const file = url.startsWith(prefix) ? source.files.get(decodeURIComponent(url.slice(prefix.length))) : undefined;
    return file ? new Response(file) : new Response(null, { status: 404, statusText: 'Not Found' });
  };
}

/**
 * Check that parsed JSON is a report this page can show.
 * @throws Error naming `where` and the fix.
 */
export function checkReport(json: unknown, where: string): ContinualReport {
  const r = json as Partial<ContinualReport> | null;
  if (r === null || typeof r !== 'object' || !('classMatrices' in r) || !('curve' in r)) {
    throw new Error(`${where} is not a one-for-more report.json (no classMatrices or curve); pick the report.json that 'ofm train' writes in <checkpoint>/report/.`);
  }
  if (r.formatVersion !== REPORT_FORMAT_VERSION) {
    throw new Error(`${where} is a report of format version ${String(r.formatVersion)}; this page reads version ${REPORT_FORMAT_VERSION}. Evaluate the checkpoint again with this release (ofm eval).`);
  }
  return r as ContinualReport;
}

/** Parse a report.json the user picked. */
export async function readReportFile(file: File): Promise<ContinualReport> {
  let json: unknown;
  try {
    json = JSON.parse(await file.text());
  } catch {
    throw new Error(`${file.name} is not JSON; pick the report.json that 'ofm train' writes in <checkpoint>/report/.`);
  }
  return checkReport(json, file.name);
}

/** Load the model (and its report) from `source`; errors name the source and the fix. */
export async function loadModel(source: ModelSource): Promise<LoadedModel> {
  const base = source.kind === 'url' ? source.url.replace(/\/+$/, '') : source.name;
  const fetchFn = source.kind === 'url' ? globalThis.fetch.bind(globalThis) : folderFetch(source);
  const { detector, meta } = await loadExportedDetector(base, { fetch: fetchFn });
  let report: ContinualReport | null = null;
  let samplesFigure: string | null = null;
  if (meta.report) {
    const res = await fetchFn(`${base}/${meta.report}`);
    if (res.ok) report = checkReport(await res.json(), `${base}/${meta.report}`);
    const figure = `${EXPORT_REPORT_DIR}/figures/samples.png`;
    if (source.kind === 'url') samplesFigure = `${base}/${figure}`;
    else {
      const file = source.files.get(figure);
      samplesFigure = file ? URL.createObjectURL(file) : null;
    }
  }
  return { source, label: source.kind === 'url' ? source.url : `${source.name} (local folder)`, detector, meta, report, samplesFigure };
}

/** Release what a loaded model holds: its tensors, and the object URL of a picked folder's figure. */
export function releaseModel(model: LoadedModel): void {
  model.detector.dispose();
  if (model.samplesFigure?.startsWith('blob:')) URL.revokeObjectURL(model.samplesFigure);
}
