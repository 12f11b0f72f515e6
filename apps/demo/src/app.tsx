/**
 * The demo's shell: starts the tfjs backend, loads the model (the folder served beside the app, a
 * `?model=` URL, or a folder the user picks), and shows the detection page or the dashboard
 * (`#/dashboard`).
 */
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { type BackendInfo, requestedBackend, startBackend } from './backend';
import { ModelPanel } from './components/model-panel';
import { type LoadedModel, type ModelSource, loadModel, modelUrlFrom, releaseModel } from './model';
import { DashboardPage } from './pages/dashboard-page';
import { DetectPage } from './pages/detect-page';

/** What the page knows about the model; `id` numbers the loads (each model opened gets a new one). */
export type ModelState =
  | { status: 'loading'; label: string }
  | { status: 'ready'; model: LoadedModel; id: number }
  | { status: 'error'; label: string; message: string };

type Route = 'detect' | 'dashboard';

function routeOf(hash: string): Route {
  return hash.startsWith('#/dashboard') ? 'dashboard' : 'detect';
}

function describeError(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export function App() {
  const [route, setRoute] = useState<Route>(routeOf(location.hash));
  const [backend, setBackend] = useState<BackendInfo | null>(null);
  const [backendError, setBackendError] = useState<string | null>(null);
  const [model, setModel] = useState<ModelState>({ status: 'loading', label: modelUrlFrom(location.search) });

  useEffect(() => {
    const onHash = () => setRoute(routeOf(location.hash));
    addEventListener('hashchange', onHash);
    return () => removeEventListener('hashchange', onHash);
  }, []);

  // The model in use (its tensors are released when another replaces it) and the latest request.
  const current = useRef<LoadedModel | null>(null);
  const request = useRef(0);
  const open = useCallback(async (source: ModelSource) => {
    const ticket = ++request.current;
    const label = source.kind === 'url' ? source.url : source.name;
    if (current.current) releaseModel(current.current);
    current.current = null;
    setModel({ status: 'loading', label });
    try {
      const loaded = await loadModel(source);
      if (ticket !== request.current) {
        releaseModel(loaded);
        return;
      }
      current.current = loaded;
      setModel({ status: 'ready', model: loaded, id: ticket });
    } catch (err) {
      if (ticket === request.current) setModel({ status: 'error', label, message: describeError(err) });
    }
  }, []);

  useEffect(() => {
    startBackend(requestedBackend(location.search))
      .then((info) => {
        setBackend(info);
        return open({ kind: 'url', url: modelUrlFrom(location.search) });
      })
      .catch((err) => setBackendError(describeError(err)));
  }, [open]);

  return (
    <div class="shell">
      <header class="topbar">
        <div class="brand">
          <span class="logo" aria-hidden="true" />
          <div>
            <h1>one-for-more</h1>
            <p>continual anomaly detection, running in your browser</p>
          </div>
        </div>
        <nav class="tabs">
          <a href="#/" class={route === 'detect' ? 'active' : ''}>
            Detect
          </a>
          <a href="#/dashboard" class={route === 'dashboard' ? 'active' : ''}>
            Dashboard
          </a>
        </nav>
        <ModelPanel state={model} backend={backend} onOpen={open} />
      </header>
      <main>
        {backendError ? (
          <p class="message error" role="alert" data-testid="message">
            No tfjs backend could start: {backendError}
          </p>
        ) : route === 'detect' ? (
          <DetectPage state={model} />
        ) : (
          <DashboardPage state={model} />
        )}
      </main>
      <footer>
        {backend ? (
          <span data-testid="backend" title={backend.notes.join('\n')}>
            tfjs backend: <b>{backend.name}</b> ({backend.detail}){backend.notes.length ? ` · ${backend.notes.join(' · ')}` : ''}
          </span>
        ) : (
          <span>starting the tfjs backend…</span>
        )}
        <span>
          One-for-More (Li et al., CVPR 2025) in TypeScript · models from <code>ofm export</code>
        </span>
      </footer>
    </div>
  );
}
