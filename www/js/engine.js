// The page's side of the worker protocol: start the worker, then call it with promises.

export class Engine {
  constructor(url = new URL('../worker.js', import.meta.url)) {
    this.worker = new Worker(url, { type: 'module' });
    this.nextId = 1;
    this.pending = new Map();
    this.ready = new Promise((resolve, reject) => {
      this.worker.addEventListener('message', (event) => {
        const msg = event.data;
        if (msg.type === 'ready') return resolve(msg.env);
        if (msg.type === 'fatal') return reject(new Error(msg.message));
        const call = this.pending.get(msg.id);
        if (!call) return;
        this.pending.delete(msg.id);
        if (msg.type === 'result') call.resolve(msg.value);
        else call.reject(new Error(msg.message));
      });
      this.worker.addEventListener('error', (event) => {
        const err = new Error(`the engine's worker failed: ${event.message || 'unknown error'}`);
        reject(err);
        for (const call of this.pending.values()) call.reject(err);
        this.pending.clear();
      });
    });
  }

  /** Send a request; `transfer` lists ArrayBuffers moved (not copied) to the worker. */
  call(type, payload = {}, transfer = []) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, type, ...payload }, transfer);
    });
  }
}
