/**
 * The continual-learning dashboard: a run's `report.json` (the loaded model's, when its export
 * carries one, or a file the user picks): averages and forgetting after the last task, the
 * task-by-task metric matrix, the curves over tasks, the tasks, and the sample heatmaps.
 */
import { type ContinualReport, REPORT_METRICS, type ReportMetric, reportCurveSvg } from '@ofm/detector/browser';
import type { ComponentChild } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import type { ModelState } from '../app';
import { readReportFile } from '../model';

/** A report on screen, where it came from, and its sample-heatmap figure (a URL) if any. */
interface ShownReport {
  report: ContinualReport;
  from: string;
  figure: string | null;
}

const METRIC_NAMES: Record<ReportMetric, string> = {
  image_auroc: 'image AUROC',
  image_ap: 'image AP',
  pixel_auroc: 'pixel AUROC',
  pixel_ap: 'pixel AP',
  pixel_aupro: 'pixel AUPRO',
};

function fmt(v: number | null | undefined, digits = 3): string {
  return v === null || v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(digits);
}

export function DashboardPage({ state }: { state: ModelState }) {
  const [picked, setPicked] = useState<ShownReport | null>(null);
  const [error, setError] = useState<string | null>(null);
  const fromModel: ShownReport | null =
    state.status === 'ready' && state.model.report
      ? { report: state.model.report, from: state.model.label, figure: state.model.samplesFigure }
      : null;
  const shown = picked ?? fromModel;

  // Object URLs of picked figures are released when replaced.
  useEffect(() => {
    const url = picked?.figure;
    return () => {
      if (url) URL.revokeObjectURL(url);
    };
  }, [picked]);

  const onPick = async (files: FileList | null) => {
    const list = Array.from(files ?? []);
    const json = list.find((f) => f.name.endsWith('.json'));
    if (!json) {
      setError('Pick the report.json of a run (with figures/samples.png beside it, optionally).');
      return;
    }
    try {
      const report = await readReportFile(json);
      const png = list.find((f) => f.name.endsWith('.png'));
      setPicked({ report, from: json.name, figure: png ? URL.createObjectURL(png) : null });
      setError(null);
    } catch (err) {
      setError((err as Error).message);
    }
  };

  const picker = (
    <label class="button secondary">
      Open a report.json…
      <input type="file" accept=".json,.png" multiple class="visually-hidden" data-testid="report-input" onChange={(e) => onPick(e.currentTarget.files)} />
    </label>
  );

  return (
    <div class="dashboard">
      {error && (
        <p class="message error" role="alert" data-testid="message">
          {error}
        </p>
      )}
      {shown ? (
        <Report shown={shown} picker={picker} />
      ) : (
        <section class="card placeholder">
          <p>
            {state.status === 'ready'
              ? 'The loaded model carries no report (its run was trained without evaluation).'
              : 'No report yet: load a model exported from a training run, or open a report.json.'}
          </p>
          <p class="hint">
            <code>ofm train</code> writes <code>report/report.json</code> in the checkpoint, and <code>ofm export</code> carries it along.
          </p>
          {picker}
        </section>
      )}
    </div>
  );
}

function Report({ shown, picker }: { shown: ShownReport; picker: ComponentChild }) {
  const { report, from, figure } = shown;
  const [metric, setMetric] = useState<ReportMetric>('image_auroc');
  const last = report.curve[report.curve.length - 1];
  const taskLabels = report.tasks.map((t) => `task ${t.index + 1}`);
  const tiles: [string, string, string][] = [
    ['avg image AUROC', fmt(last?.avg_image_auroc), 'over the classes seen'],
    ['avg pixel AUROC', fmt(last?.avg_pixel_auroc), 'over the classes seen'],
    ['avg pixel AUPRO', fmt(last?.avg_pixel_aupro), 'up to FPR 0.3'],
    ['image forgetting', fmt(last?.image_auroc_forgetting), 'best earlier − now'],
    ['pixel forgetting', fmt(last?.pixel_auroc_forgetting), 'best earlier − now'],
    ['pooled image AUROC', fmt(last?.pooled_image_auroc_calibrated), `all classes, one threshold (raw ${fmt(last?.pooled_image_auroc_raw)})`],
    ['routing accuracy', fmt(last?.routing_accuracy), 'images routed to their class'],
  ];
  const curve = reportCurveSvg(report.curve, taskLabels);
  return (
    <>
      <section class="card report-head">
        <div>
          <h2>Continual-learning report</h2>
          <p class="hint">
            {from} · {report.tasks.length} task{report.tasks.length === 1 ? '' : 's'}, {report.classes.length} class
            {report.classes.length === 1 ? '' : 'es'} · created {new Date(report.createdAt).toLocaleString()} · backend {report.backend} · seed{' '}
            {report.seed} · gradient projection {report.projection ? 'on' : 'off'}
          </p>
        </div>
        {picker}
      </section>
      <section class="tiles" data-testid="summary">
        {tiles.map(([name, value, note]) => (
          <div class="card tile" key={name}>
            <span class="tile-name">{name}</span>
            <span class="tile-value">{value}</span>
            <small>{note}</small>
          </div>
        ))}
      </section>
      <div class="dashboard-grid">
        <section class="card">
          <div class="card-head">
            <h2>Task-by-task matrix</h2>
            <div class="segmented" role="tablist">
              {REPORT_METRICS.map((m) => (
                <button type="button" role="tab" aria-selected={m === metric} class={m === metric ? 'active' : ''} key={m} onClick={() => setMetric(m)}>
                  {METRIC_NAMES[m]}
                </button>
              ))}
            </div>
          </div>
          <MetricMatrix report={report} metric={metric} />
          <p class="hint">Row i: after learning task i. Column: a class, under the task that taught it. Shade from 0.5 (chance) to 1.</p>
        </section>
        <section class="card">
          <h2>Over tasks</h2>
          <img class="figure" src={`data:image/svg+xml;charset=utf-8,${encodeURIComponent(curve)}`} alt="average AUROC and forgetting after each task" />
        </section>
      </div>
      <section class="card">
        <h2>Tasks</h2>
        <div class="table-scroll">
          <table class="data">
            <thead>
              <tr>
                <th>task</th>
                <th>classes</th>
                <th>steps</th>
                <th>train s</th>
                <th>final loss</th>
                <th>t₀ per class</th>
                <th>basis rank</th>
                <th>basis KiB</th>
              </tr>
            </thead>
            <tbody>
              {report.tasks.map((t) => (
                <tr key={t.index}>
                  <td>{t.index + 1}</td>
                  <td>{t.classes.join(', ')}</td>
                  <td>{t.steps}</td>
                  <td>{t.trainSeconds.toFixed(1)}</td>
                  <td>{t.finalLoss.toFixed(4)}</td>
                  <td>{Object.values(t.tStart).join(', ')}</td>
                  <td>{t.basisRank}</td>
                  <td>{(t.basisBytes / 1024).toFixed(0)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </section>
      <section class="card">
        <h2>Sample heatmaps</h2>
        {figure ? (
          <img class="samples-figure" src={figure} alt="input, reconstruction, anomaly map and ground truth of test samples" />
        ) : (
          <p class="hint">The run's figures/samples.png appears here when it is available (pick it together with report.json).</p>
        )}
      </section>
    </>
  );
}

function MetricMatrix({ report, metric }: { report: ContinualReport; metric: ReportMetric }) {
  const matrix = report.classMatrices[metric];
  const taskOf = new Map(report.tasks.flatMap((t) => t.classes.map((c) => [c, t.index] as const)));
  return (
    <div class="table-scroll">
      <table class="matrix" data-testid="matrix">
        <thead>
          <tr>
            <th />
            {report.classes.map((c) => (
              <th key={c}>
                <small>task {(taskOf.get(c) ?? 0) + 1}</small>
                {c}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {matrix.map((row, i) => (
            // biome-ignore lint/suspicious/noArrayIndexKey: rows are the tasks, in order
            <tr key={i}>
              <th>after task {i + 1}</th>
              {row.map((v, j) => {
                if (v === null || !Number.isFinite(v)) {
                  return (
                    <td key={report.classes[j]} class="empty">
                      ·
                    </td>
                  );
                }
                // Chance (0.5) is pale, perfect (1) is the accent colour.
                const strength = Math.round(100 * Math.min(1, Math.max(0, (v - 0.5) / 0.5)));
                return (
                  <td
                    key={report.classes[j]}
                    style={{ background: `color-mix(in oklab, var(--accent) ${strength}%, #f1f2fb)`, color: strength > 55 ? '#fff' : 'var(--ink)' }}
                  >
                    {fmt(v)}
                  </td>
                );
              })}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
