// A service worker that makes the published page cross-origin isolated on static hosts that cannot
// send headers (GitHub Pages): it answers every request for this site, the page's navigation
// included, with the server's response plus the headers that isolate a page
// (Cross-Origin-Opener-Policy, Cross-Origin-Embedder-Policy) and let it embed the site's own files
// (Cross-Origin-Resource-Policy). Requests to other sites (model URLs) go to the network untouched:
// they are CORS requests, which an isolated page may make. js/boot.js registers this worker only on
// the page `./build.sh dist` builds, and reloads the page once when it first becomes active.

const ISOLATION = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

self.addEventListener('install', () => {
  self.skipWaiting();
});

self.addEventListener('activate', (event) => {
  event.waitUntil(self.clients.claim());
});

/** The response to `request` from the network, re-made with the isolation headers. */
async function isolated(request) {
  const response = await fetch(request);
  // Opaque answers (a redirected navigation, no-cors) cannot be re-made; nor can status 0.
  if (response.type === 'opaque' || response.type === 'opaqueredirect' || response.status === 0) return response;
  const headers = new Headers(response.headers);
  for (const [name, value] of Object.entries(ISOLATION)) headers.set(name, value);
  return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
}

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (new URL(request.url).origin !== self.location.origin) return;
  // Chrome asks for cache-only reloads of other origins' requests this way; fetch() refuses them.
  if (request.cache === 'only-if-cached' && request.mode !== 'same-origin') return;
  event.respondWith(isolated(request));
});
