/**
 * Detection: an image dropped, picked, or chosen among the bundled samples goes through the model;
 * the page shows the input, the reconstruction, the heatmap over the input, the score against an
 * adjustable threshold, and the classes (tasks) the model knows.
 */
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import type { ModelState } from '../app';
import { BitmapCanvas, OverlayCanvas, RgbCanvas } from '../components/canvases';
import { type PageDetection, detectOne } from '../detect';
import { HEAT_GRADIENT } from '../draw';
import { ImageInputError, type PreparedImage, prepareImageFile } from '../image';
import type { LoadedModel } from '../model';
import { type SampleSpec, renderSample, samplesFor } from '../samples';

/** Default threshold on the calibrated score: 3 standard deviations above normal (as `ofm detect`). */
const DEFAULT_THRESHOLD = 3;

type Message = { kind: 'error' | 'info'; text: string };

/** Let the browser paint (the busy state) before a blocking computation. */
function nextFrame(): Promise<void> {
  return new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
}

export function DetectPage({ state }: { state: ModelState }) {
  if (state.status === 'loading') {
    return (
      <section class="card placeholder" aria-busy="true">
        <div class="spinner" aria-hidden="true" />
        <p>Loading the model from {state.label}…</p>
      </section>
    );
  }
  if (state.status === 'error') {
    return (
      <section class="card placeholder">
        <p class="message error" role="alert" data-testid="message">
          {state.message}
        </p>
        <p class="hint">
          Run <code>pnpm demo</code> to train, export and serve a small model, or open an exported model (<code>ofm export CKPT --out DIR</code>) from
          the model menu at the top right.
        </p>
      </section>
    );
  }
  // Keyed by the load: a newly loaded model starts with a clean page.
  return <Detector key={state.id} model={state.model} />;
}

function Detector({ model }: { model: LoadedModel }) {
  const size = model.meta.config.imageSize;
  const [image, setImage] = useState<PreparedImage | null>(null);
  const [result, setResult] = useState<PageDetection | null>(null);
  const [message, setMessage] = useState<Message | null>(null);
  const [busy, setBusy] = useState(false);
  const [threshold, setThreshold] = useState(DEFAULT_THRESHOLD);
  const [dragging, setDragging] = useState(false);

  // Only the latest request shows (a slow large image must not overwrite a later sample).
  const latest = useRef(0);
  // A replaced preview's pixels are released at once.
  useEffect(() => () => image?.preview.close(), [image]);

  const run = async (prepare: () => Promise<PreparedImage>) => {
    const ticket = ++latest.current;
    setBusy(true);
    setMessage(null);
    try {
      await nextFrame();
      const prepared = await prepare();
      if (ticket !== latest.current) {
        prepared.preview.close();
        return;
      }
      await nextFrame();
      const detection = await detectOne(model.detector, prepared.input);
      if (ticket !== latest.current) {
        prepared.preview.close();
        return;
      }
      setImage(prepared);
      setResult(detection);
      if (prepared.notice) setMessage({ kind: 'info', text: prepared.notice });
    } catch (err) {
      if (ticket !== latest.current) return;
      const text = err instanceof ImageInputError ? err.message : `Detection failed: ${(err as Error).message}`;
      setMessage({ kind: 'error', text });
    } finally {
      if (ticket === latest.current) setBusy(false);
    }
  };
  const onFile = (file: File | undefined) => {
    if (file) void run(() => prepareImageFile(file, size));
  };

  const samples = useMemo(() => samplesFor(model.meta.classes.map((c) => c.className)), [model]);

  return (
    <div class="detect-layout">
      <aside class="sidebar">
        <section class="card">
          <h2>Image</h2>
          <label
            class={`dropzone ${dragging ? 'dragging' : ''}`}
            onDragOver={(e) => {
              e.preventDefault();
              setDragging(true);
            }}
            onDragLeave={() => setDragging(false)}
            onDrop={(e) => {
              e.preventDefault();
              setDragging(false);
              onFile(e.dataTransfer?.files[0]);
            }}
          >
            <span class="dropzone-icon" aria-hidden="true">
              ⤓
            </span>
            <b>Drop an image here</b>
            <span>or click to choose a file</span>
            <small>PNG, JPEG, WebP, GIF or BMP · resized to {size}×{size}</small>
            <input
              type="file"
              accept="image/*"
              class="visually-hidden"
              data-testid="file-input"
              onChange={(e) => {
                onFile(e.currentTarget.files?.[0]);
                e.currentTarget.value = '';
              }}
            />
          </label>
        </section>
        {samples.length > 0 && (
          <section class="card">
            <h2>Samples</h2>
            <p class="hint">Test images of the synthetic dataset, with their true defect outlined in green.</p>
            <SampleGrid samples={samples} size={size} onPick={(s) => run(() => renderSample(s, size))} />
          </section>
        )}
        <KnownClasses model={model} routed={result?.className ?? null} />
      </aside>
      <section class="results">
        {message && (
          <p class={`message ${message.kind}`} role={message.kind === 'error' ? 'alert' : 'status'} data-testid="message">
            {message.text}
          </p>
        )}
        {image && result ? (
          <Result image={image} result={result} threshold={threshold} onThreshold={setThreshold} busy={busy} />
        ) : (
          <div class="card placeholder">
            {busy ? <div class="spinner" aria-hidden="true" /> : <span class="placeholder-art" aria-hidden="true" />}
            <p>{busy ? 'Detecting…' : 'Drop an image or pick a sample to see where the model finds anomalies.'}</p>
          </div>
        )}
      </section>
    </div>
  );
}

function SampleGrid({ samples, size, onPick }: { samples: SampleSpec[]; size: number; onPick: (s: SampleSpec) => void }) {
  const [thumbs, setThumbs] = useState<(PreparedImage | null)[]>([]);
  useEffect(() => {
    let live = true;
    Promise.all(samples.map((s) => renderSample(s, size))).then((rendered) => live && setThumbs(rendered));
    return () => {
      live = false;
    };
  }, [samples, size]);
  return (
    <div class="samples">
      {samples.map((s, i) => (
        <button type="button" class="sample" key={`${s.className}-${s.defect}`} onClick={() => onPick(s)} title={`${s.className}: ${s.defect}`}>
          {thumbs[i] ? <BitmapCanvas bitmap={thumbs[i]!.preview} label={`${s.className} ${s.defect}`} /> : <span class="thumb-placeholder" />}
          <span class={`sample-label ${s.defect === 'good' ? 'good' : 'bad'}`}>
            {s.className}
            <small>{s.defect}</small>
          </span>
        </button>
      ))}
    </div>
  );
}

function KnownClasses({ model, routed }: { model: LoadedModel; routed: string | null }) {
  const byName = new Map(model.meta.classes.map((c) => [c.className, c]));
  return (
    <section class="card">
      <h2>What the model knows</h2>
      <p class="hint">One model for all classes, learned task after task; no task id at test time.</p>
      <ol class="tasks" data-testid="known-classes">
        {model.meta.tasks.map((t) => (
          <li key={t.index}>
            <span class="task-index">task {t.index + 1}</span>
            <span class="task-classes">
              {t.classes.map((name) => (
                <span key={name} class={`class-pill ${routed === name ? 'routed' : ''}`} title={`start timestep ${byName.get(name)?.tStart ?? '?'}`}>
                  {name}
                  <small>t₀ {byName.get(name)?.tStart ?? '?'}</small>
                </span>
              ))}
            </span>
          </li>
        ))}
      </ol>
    </section>
  );
}

function Result(props: { image: PreparedImage; result: PageDetection; threshold: number; onThreshold: (t: number) => void; busy: boolean }) {
  const { image, result, threshold, onThreshold, busy } = props;
  const anomalous = result.score > threshold;
  const range: [number, number] = [0, Math.max(2 * threshold, 1)];
  const gaugeMax = Math.max(2 * threshold, result.score * 1.1, 1);
  const pct = (v: number) => `${(100 * Math.min(1, Math.max(0, v / gaugeMax))).toFixed(1)}%`;
  return (
    <div
      class={`result ${busy ? 'stale' : ''}`}
      data-testid="result"
      data-image={image.name}
      data-score={result.score}
      data-peak-x={result.peak.x}
      data-peak-y={result.peak.y}
      data-class={result.className}
    >
      <div class="panels">
        <figure class="card panel">
          <figcaption>Input</figcaption>
          <BitmapCanvas bitmap={image.preview} label="input" />
          <small class="caption">
            {image.name} · {image.width}×{image.height}
          </small>
        </figure>
        <figure class="card panel">
          <figcaption>Reconstruction</figcaption>
          <RgbCanvas image={result.reconstruction} size={image.size} label="reconstruction" />
          <small class="caption">the model's “normal” version of the input</small>
        </figure>
        <figure class="card panel">
          <figcaption>Anomaly map</figcaption>
          <OverlayCanvas input={image.preview} map={result.map} size={image.size} options={{ range, peak: result.peak, mask: image.mask }} />
          <div class="colorbar" style={{ background: `${HEAT_GRADIENT}` }} />
          <div class="colorbar-labels">
            <span>{range[0]}σ</span>
            <span>{(range[1] / 2).toFixed(1)}σ</span>
            <span>≥ {range[1].toFixed(1)}σ</span>
          </div>
        </figure>
      </div>
      <section class={`card score-card ${anomalous ? 'anomalous' : 'normal'}`}>
        <div class="score-main">
          <div>
            <span class="score-label">Anomaly score</span>
            <span class="score-value" data-testid="score">
              {result.score.toFixed(2)}
              <small>σ</small>
            </span>
          </div>
          <span class={`verdict ${anomalous ? 'anomalous' : 'normal'}`} data-testid="verdict">
            {anomalous ? 'Anomalous' : 'Normal'}
          </span>
        </div>
        <div class="gauge" aria-hidden="true">
          <div class="gauge-rest" style={{ left: pct(result.score) }} />
          <div class="gauge-threshold" style={{ left: pct(threshold) }} />
        </div>
        <label class="threshold">
          <span>
            Threshold <b>{threshold.toFixed(1)}σ</b>
          </span>
          <input type="range" min="0" max="10" step="0.1" value={threshold} onInput={(e) => onThreshold(Number(e.currentTarget.value))} />
        </label>
        <dl class="facts">
          <div>
            <dt>routed to</dt>
            <dd>{result.className}</dd>
          </div>
          <div>
            <dt>peak at</dt>
            <dd>
              ({result.peak.x}, {result.peak.y}) · {result.peak.value.toFixed(1)}σ
            </dd>
          </div>
          <div>
            <dt>raw score</dt>
            <dd>{result.rawScore.toFixed(4)}</dd>
          </div>
          <div>
            <dt>time</dt>
            <dd>{result.ms.toFixed(0)} ms</dd>
          </div>
        </dl>
        <p class="hint">
          Scores are calibrated per class: 0 is the mean of the class's normal validation images, 1 one standard deviation above.
        </p>
      </section>
    </div>
  );
}
