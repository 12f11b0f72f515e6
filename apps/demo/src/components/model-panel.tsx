/** The model chip in the top bar, with a panel to open another model by URL or from a local folder. */
import { useEffect, useRef, useState } from 'preact/hooks';
import type { ModelState } from '../app';
import type { BackendInfo } from '../backend';
import { type ModelSource, folderSource } from '../model';

interface Props {
  state: ModelState;
  backend: BackendInfo | null;
  onOpen: (source: ModelSource) => void;
}

function summary(state: ModelState): string {
  switch (state.status) {
    case 'loading':
      return `loading ${state.label}…`;
    case 'error':
      return 'no model loaded';
    case 'ready': {
      const { meta } = state.model;
      const classes = meta.classes.length;
      return `${classes} class${classes === 1 ? '' : 'es'} · ${meta.tasks.length} task${meta.tasks.length === 1 ? '' : 's'} · ${(meta.parameters / 1e6).toFixed(2)} M params · ${meta.config.imageSize} px`;
    }
  }
}

export function ModelPanel({ state, backend, onOpen }: Props) {
  const [openPanel, setOpenPanel] = useState(false);
  const [url, setUrl] = useState('');
  const root = useRef<HTMLDivElement>(null);
  // Escape or a click elsewhere closes the panel.
  useEffect(() => {
    if (!openPanel) return;
    const onKey = (e: KeyboardEvent) => e.key === 'Escape' && setOpenPanel(false);
    const onPointer = (e: PointerEvent) => root.current?.contains(e.target as Node) || setOpenPanel(false);
    addEventListener('keydown', onKey);
    addEventListener('pointerdown', onPointer);
    return () => {
      removeEventListener('keydown', onKey);
      removeEventListener('pointerdown', onPointer);
    };
  }, [openPanel]);
  const submit = (event: Event) => {
    event.preventDefault();
    if (url.trim()) {
      onOpen({ kind: 'url', url: url.trim() });
      setOpenPanel(false);
    }
  };
  return (
    <div class="model-panel" ref={root}>
      <button
        type="button"
        class={`model-chip ${state.status}`}
        data-testid="model-status"
        data-state={state.status}
        aria-expanded={openPanel}
        onClick={() => setOpenPanel(!openPanel)}
      >
        <span class="dot" aria-hidden="true" />
        <span class="chip-text">
          <b>{state.status === 'ready' ? state.model.label : 'Model'}</b>
          <small>{summary(state)}</small>
        </span>
        <span class="chevron" aria-hidden="true">
          ▾
        </span>
      </button>
      {openPanel && (
        <dialog open class="popover" aria-label="Open a model">
          <h3>Open an exported model</h3>
          <p class="hint">
            Made with <code>ofm export CKPT --out DIR</code>. Serve the folder and give its URL, or pick the folder itself.
          </p>
          <form onSubmit={submit} class="url-form">
            <input type="url" placeholder="https://…/model/ or /model/" value={url} onInput={(e) => setUrl(e.currentTarget.value)} />
            <button type="submit" class="primary">
              Load
            </button>
          </form>
          <label class="button secondary">
            Pick a folder…
            <input
              type="file"
              class="visually-hidden"
              ref={(el) => {
                if (el) el.webkitdirectory = true;
              }}
              onChange={(e) => {
                const files = e.currentTarget.files;
                if (files && files.length > 0) {
                  onOpen(folderSource(files));
                  setOpenPanel(false);
                }
              }}
            />
          </label>
          {backend && (
            <p class="hint">
              Runs on <b>{backend.name}</b> ({backend.detail}). Force another with <code>?backend=webgpu</code>, <code>webgl</code>, <code>wasm</code> or{' '}
              <code>cpu</code>.
            </p>
          )}
        </dialog>
      )}
    </div>
  );
}
