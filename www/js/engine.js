// The page's side of the worker protocol: start the worker, call it with promises, follow
// progress, and restart it (the only way to stop a computation inside wasm).

export class CancelledError extends Error {
  constructor() {
    super('Cancelled.');
    this.name = 'CancelledError';
  }
}

export class Engine {
  constructor(url = new URL('../worker.js', import.meta.url)) {
    this.url = url;
    this.nextId = 1;
    this.pending = new Map();
    this.start();
  }

  start() {
    this.worker = new Worker(this.url, { type: 'module' });
    const worker = this.worker;
    this.ready = new Promise((resolve, reject) => {
      worker.addEventListener('message', (event) => {
        const msg = event.data;
        if (msg.type === 'ready') return resolve(msg.env);
        if (msg.type === 'fatal') return reject(new Error(msg.message));
        const call = this.pending.get(msg.id);
        if (!call) return;
        if (msg.type === 'progress') {
          call.onProgress?.(msg.value);
          return;
        }
        this.pending.delete(msg.id);
        if (msg.type === 'result') call.resolve(msg.value);
        else call.reject(new Error(msg.message));
      });
      worker.addEventListener('error', (event) => {
        const err = new Error(`the engine stopped: ${event.message || 'it ran out of memory or crashed'}`);
        reject(err);
        for (const call of this.pending.values()) call.reject(err);
        this.pending.clear();
      });
    });
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
