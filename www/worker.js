// The module worker that owns the wasm engine. The page never blocks on compute: it sends
// messages here and gets results back.
//
// Protocol: the page sends {id, type, ...}; the worker answers {id, type: 'result', value} or
// {id, type: 'error', message}, and, for long calls, {id, type: 'progress', value} on the way.
// Once at start it posts {type: 'ready', env} or {type: 'fatal', message}.

// A tiny module using a SIMD instruction (i8x16.popcnt): validates only where wasm SIMD exists.
const SIMD_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11,
]);

// The same shape with i32x4.relaxed_dot_i8x16_i7x16_add_s: validates only where relaxed SIMD exists.
const RELAXED_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 19, 1, 17, 0, 65, 0, 253, 15, 65, 0, 253, 15, 65,
  0, 253, 15, 253, 147, 2, 11,
]);

let engine = null; // the imported wasm-bindgen module
let session = null;

async function start() {
  const simd = WebAssembly.validate(SIMD_PROBE);
  if (!simd) {
    throw new Error('This browser does not support WebAssembly SIMD, which paritylab needs. Use a current Chrome, Edge, Firefox or Safari.');
  }
  // Threads need SharedArrayBuffer, which browsers only give to cross-origin isolated pages.
  const isolated = self.crossOriginIsolated === true && typeof SharedArrayBuffer === 'function';
  // The threaded build comes in two flavours: with relaxed SIMD (4-bit weights dotted as bytes,
  // the same numbers) where the browser has it, plain SIMD128 otherwise.
  const relaxed = WebAssembly.validate(RELAXED_PROBE);
  // Benchmarks and tests pin the build and the thread count: worker.js?build=st|mt|mt-relaxed or
  // ?threads=N (a pin the browser cannot run falls back as above).
  const params = new URL(self.location.href).searchParams;
  const pinned = params.get('build');
  const build = isolated && pinned !== 'st' ? 'mt' : 'st';
  const flavour = build === 'mt' && relaxed && pinned !== 'mt' ? 'mt-relaxed' : build;
  engine = await import(`./pkg-${flavour}/paritylab.js`);
  await engine.default();
  if (build === 'mt') {
    const cores = navigator.hardwareConcurrency || 2;
    const asked = Number.parseInt(params.get('threads') || '', 10);
    const threads = asked >= 1 && asked <= 16 ? asked : Math.min(Math.max(cores, 2), 16);
    // Must come before any other rayon use, or rayon builds a default pool first.
    await engine.initThreadPool(threads);
  }
  session = new engine.Session();
  const info = engine.build_info();
  return {
    build,
    flavour,
    relaxed: flavour === 'mt-relaxed',
    isolated,
    simd: info.simd,
    threads: info.threads,
    version: info.version,
    poolThreads: engine.pool_thread_indices().length,
    memory: engine.memory_bytes(),
  };
}

/** Bytes of a file read and handed to the engine at a time. */
const CHUNK = 16 * 2 ** 20;

/**
 * Check a file before reading it: its header (from its first bytes, more while the header goes
 * on) and what loading it and then doing `request` will take. Throws the header's error or the
 * memory message; a file that does not fit is never read.
 */
async function planFile(file, request) {
  return refusedKeepsModel(async () => {
    let n = Math.min(file.size, 2 ** 20);
    for (;;) {
      const prefix = new Uint8Array(await file.slice(0, n).arrayBuffer());
      const plan = engine.plan_load(prefix, file.size, request || {});
      if (plan.more === undefined) return plan;
      if (plan.more <= n) throw new Error('the GGUF header is truncated');
      n = plan.more;
    }
  });
}

/** Errors of a check made before the engine dropped its model say so (`kept`: the page keeps it). */
async function refusedKeepsModel(check) {
  try {
    return await check();
  } catch (err) {
    throw Object.assign(err instanceof Error ? err : new Error(String(err)), { kept: true });
  }
}

/** Load a File (a handle: the worker reads it piece by piece straight into the engine). */
async function loadFile({ file, name, request }, progress) {
  const plan = await planFile(file, request);
  session.begin_load(file.size);
  for (let offset = 0; offset < file.size; offset += CHUNK) {
    session.load_chunk(new Uint8Array(await file.slice(offset, offset + CHUNK).arrayBuffer()));
    progress({ read: Math.min(offset + CHUNK, file.size), total: file.size });
  }
  const info = session.finish_load();
  session.set_file_name(name || file.name || 'model.gguf');
  return { value: { info, estimate: plan.estimate } };
}

/** Answer one request; `progress` posts progress for this request. */
function handle(msg, progress) {
  switch (msg.type) {
    case 'load_file':
      return loadFile(msg, progress);
    case 'load': {
      const bytes = new Uint8Array(msg.bytes);
      return refusedKeepsModel(() => engine.plan_load(bytes, bytes.length, msg.request || {})).then((plan) => {
        const info = session.load(bytes);
        if (msg.name) session.set_file_name(msg.name);
        return { value: { info, estimate: plan.estimate } };
      });
    }
    case 'abort_for_test':
      // Makes the engine trap as an allocation failure would: the page's crash handling is tested.
      engine.abort_for_test();
      return { value: null };
    case 'synthetic':
      return refusedKeepsModel(() => engine.plan_synthetic(msg.spec || '', msg.request || {})).then((plan) => ({
        value: { info: session.load_synthetic(msg.spec || ''), estimate: plan.estimate },
      }));
    case 'tensor_stats':
      return { value: session.tensor_stats(msg.name) };
    case 'model_info':
      return { value: session.model_info() };
    case 'run':
      return { value: session.run(msg.path, msg.prompt, msg.top, msg.options || {}) };
    case 'trace_estimate':
      return { value: session.trace_estimate(msg.a, msg.b || undefined, msg.prompt, msg.decode || 0) };
    case 'bench_matmul':
      return { value: engine.bench_matmul(msg.budgetMs || 1000) };
    case 'bench_infer':
      return { value: session.bench_infer(msg.path, Uint32Array.from(msg.prompt), msg.decode, msg.capture) };
    case 'input_tokens':
      return { value: session.input_tokens(msg.path, msg.prompt) };
    case 'tokenize':
      return { value: session.tokenize(msg.text, msg.parseSpecial !== false, msg.addSpecial !== false) };
    case 'pieces':
      return { value: session.pieces(new Uint32Array(msg.ids)) };
    case 'decode':
      return { value: session.decode(new Uint32Array(msg.ids)) };
    case 'compare':
      return { value: session.compare(msg.a, msg.b, msg.prompt, msg.options || {}, progress) };
    case 'compared_stage':
      return { value: session.compared_stage(msg.name, msg.position, msg.isolated === true) };
    case 'report_markdown':
      return { value: session.report_markdown(msg.shareUrl || undefined) };
    case 'stages':
      return { value: session.stages() };
    case 'stage': {
      const value = session.stage(msg.name);
      return { value, transfer: [value.values.buffer] };
    }
    case 'dump': {
      const bytes = session.dump();
      return { value: bytes.buffer, transfer: [bytes.buffer] };
    }
    case 'dump_path': {
      const bytes = session.dump_path(msg.side);
      return { value: bytes.buffer, transfer: [bytes.buffer] };
    }
    case 'file_bytes': {
      const bytes = session.file_bytes();
      return { value: bytes.buffer, transfer: [bytes.buffer] };
    }
    case 'add_dump':
      return { value: session.add_dump(msg.name, msg.files.map((f) => ({ name: f.name, bytes: new Uint8Array(f.bytes) }))) };
    case 'remove_dump':
      session.remove_dump(msg.name);
      return { value: null };
    case 'file_sha256':
      return { value: session.file_sha256() };
    case 'presets':
      return { value: engine.presets() };
    case 'path_fields':
      return { value: engine.path_fields() };
    case 'path_spec':
      return { value: engine.path_spec(msg.text) };
    case 'synth_spec':
      return { value: engine.synth_spec(msg.text || '') };
    case 'default_state':
      return { value: engine.default_state() };
    case 'encode_state':
      return { value: engine.encode_state(msg.state) };
    case 'decode_state':
      return { value: engine.decode_state(msg.hash) };
    case 'memory':
      return { value: engine.memory_bytes() };
    default:
      throw new Error(`unknown request type ${JSON.stringify(msg.type)}`);
  }
}

const ready = start();

self.onmessage = async (event) => {
  const msg = event.data;
  try {
    await ready;
    const progress = (value) => self.postMessage({ id: msg.id, type: 'progress', value });
    const { value, transfer } = await handle(msg, progress);
    self.postMessage({ id: msg.id, type: 'result', value }, transfer || []);
  } catch (err) {
    // A trap (out of memory inside the engine, or a bug) leaves the engine unusable: the page
    // restarts the worker. So does a failed growth of the engine's memory.
    const fatal = err instanceof WebAssembly.RuntimeError || (err instanceof RangeError && /memory/i.test(err.message));
    const message = String(err && err.message ? err.message : err);
    self.postMessage({ id: msg.id, type: 'error', fatal, kept: err?.kept === true, message });
  }
};

ready.then(
  (env) => self.postMessage({ type: 'ready', env }),
  (err) => self.postMessage({ type: 'fatal', message: String(err && err.message ? err.message : err) }),
);
