// Fetching a GGUF from a URL: https (or localhost) only, streamed with progress (bytes and speed),
// cancellable, and refusing answers that are not GGUF files as soon as the first bytes arrive.

import { bytes as fmtBytes } from './format.js';

/** Why a URL cannot be fetched, or null when it can. */
export function urlProblem(text) {
  let url;
  try {
    url = new URL(text);
  } catch {
    return `"${text.slice(0, 120)}" is not a URL.`;
  }
  const local = ['localhost', '127.0.0.1'].includes(url.hostname);
  if (url.protocol === 'http:' && url.hostname === '[::1]') {
    // The page's Content-Security-Policy cannot name an IPv6 address (index.html, connect-src).
    return 'http://[::1] cannot be fetched from this page: use http://127.0.0.1 or http://localhost.';
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && local)) {
    return 'Only https:// URLs are fetched (or http://localhost).';
  }
  return null;
}

/** The most the browser engine can hold: wasm32 memory is at most 4 GiB. */
export const MAX_MODEL_BYTES = 4 * 2 ** 30;

/**
 * Download `url` into a Blob (the browser may keep a large one on disk; the engine reads it in
 * pieces). `onProgress({received, total, speed})` is called as data arrives (`total` is null when
 * the server does not say). A file over `maxBytes` is refused as soon as its size is known.
 * Throws readable errors.
 */
export async function fetchModel(url, { signal, onProgress, maxBytes = MAX_MODEL_BYTES } = {}) {
  const problem = urlProblem(url);
  if (problem) throw new Error(problem);
  const host = new URL(url).host;
  let response;
  try {
    response = await fetch(url, { signal, mode: 'cors', credentials: 'omit', cache: 'no-store' });
  } catch (err) {
    if (signal?.aborted) throw err;
    throw new Error(
      `Could not read ${url}: the server at ${host} is unreachable, or it does not allow this page to read the file (CORS). ` +
        'Download the file and drop it here instead.',
    );
  }
  if (!response.ok) throw new Error(`${host} answered ${response.status} ${response.statusText} for ${url}.`);
  const total = Number(response.headers.get('content-length')) || null;
  const tooLarge = (size) =>
    new Error(`${url} is ${fmtBytes(size)}: larger than the ${fmtBytes(maxBytes)} the browser engine can hold (wasm32 memory). Run it with the paritylab CLI, or use a smaller or more quantized file.`);
  if (total !== null && total > maxBytes) {
    response.body?.cancel();
    throw tooLarge(total);
  }
  const type = response.headers.get('content-type') || 'unknown type';
  if (!response.body) throw new Error('This browser cannot stream downloads.');
  const reader = response.body.getReader();
  const chunks = [];
  let received = 0;
  const started = performance.now();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (received === 0 && value.length >= 4) {
      const magic = String.fromCharCode(...value.subarray(0, 4));
      if (magic !== 'GGUF') {
        await reader.cancel();
        const shown = /^[\x20-\x7e]{4}$/.test(magic) ? `"${magic}"` : 'binary data';
        throw new Error(`${url} is not a GGUF file: it starts with ${shown} (${type}).`);
      }
    }
    chunks.push(value);
    received += value.length;
    if (received > maxBytes) {
      await reader.cancel();
      throw tooLarge(received);
    }
    const secs = (performance.now() - started) / 1000;
    onProgress?.({ received, total, speed: secs > 0 ? received / secs : 0 });
  }
  if (received < 4) throw new Error(`${url} is empty (${fmtBytes(received)}), not a GGUF file.`);
  return new Blob(chunks);
}
