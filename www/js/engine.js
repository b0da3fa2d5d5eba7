// The page's side of the worker protocol: start the worker, call it with promises, follow
// progress, and restart it (the only way to stop a computation inside wasm).

export class CancelledError extends Error {
  constructor() {
    super('Cancelled.');
    this.name = 'CancelledError';
  }
}

/** The engine crashed (a trap inside wasm, memory that could not grow, the worker died): the
 * call failed and a fresh worker was started, without the model. */
export class CrashedError extends Error {
  constructor(message) {
    super(`The engine crashed (${message}). It was restarted; your settings are kept.`);
    this.name = 'CrashedError';
    this.reason = message;
  }
}

export class Engine {
  /** `onCrash(reason)` is told when the worker crashed and was restarted (also while idle). */
  constructor(url = new URL('../worker.js', import.meta.url), { onCrash = null } = {}) {
    this.url = url;
    this.nextId = 1;
    this.pending = new Map();
    this.onCrash = onCrash;
    this.crashes = 0;
    this.start();
  }

  /** The worker is unusable: fail every pending call, start a fresh worker, tell the page. */
  crashed(raw) {
    // wasm's own words for a trap say little: say what it usually means.
    const reason = /unreachable/i.test(raw)
      ? 'it trapped inside WebAssembly: an allocation the browser refused, or a bug'
      : /memory/i.test(raw) ? `it ran out of memory: ${raw}` : raw;
    this.crashes += 1;
    this.worker.terminate();
    const err = new CrashedError(reason);
    for (const call of this.pending.values()) call.reject(err);
    this.pending.clear();
    this.start();
    this.onCrash?.(reason);
  }

  start() {
    this.worker = new Worker(this.url, { type: 'module' });
    const worker = this.worker;
    let started = false;
    this.ready = new Promise((resolve, reject) => {
      worker.addEventListener('message', (event) => {
        const msg = event.data;
        if (msg.type === 'ready') {
          started = true;
          return resolve(msg.env);
        }
        if (msg.type === 'fatal') return reject(new Error(msg.message));
        if (msg.fatal) return this.crashed(msg.message);
        const call = this.pending.get(msg.id);
        if (!call) return;
        if (msg.type === 'progress') {
          call.onProgress?.(msg.value);
          return;
        }
        this.pending.delete(msg.id);
        if (msg.type === 'result') call.resolve(msg.value);
        else call.reject(Object.assign(new Error(msg.message), { kept: msg.kept === true }));
      });
      // An uncaught error or a worker the browser could not keep (out of memory).
      const died = (event) => {
        event.preventDefault?.();
        if (this.worker !== worker) return;
        const reason = event.message || 'it ran out of memory or stopped';
        reject(new Error(`the engine stopped: ${reason}`));
        // A worker that never started would fail again: only a running engine is restarted.
        if (started) this.crashed(reason);
      };
      worker.addEventListener('error', died);
      worker.addEventListener('messageerror', died);
    });
    // A start that fails is reported to whoever awaits `ready`, not as an unhandled rejection.
    this.ready.catch(() => {});
  }

  /** Stop whatever the worker is doing: every pending call is rejected, a fresh worker starts. */
  restart() {
    this.worker.terminate();
    for (const call of this.pending.values()) call.reject(new CancelledError());
    this.pending.clear();
    this.start();
    return this.ready;
  }

  /** Send a request; `transfer` lists ArrayBuffers moved (not copied) to the worker. */
  call(type, payload = {}, transfer = [], onProgress = null) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, onProgress });
      this.worker.postMessage({ id, type, ...payload }, transfer);
    });
  }
}
