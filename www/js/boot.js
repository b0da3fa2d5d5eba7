// The page's entry point: starts app.js, which starts the engine worker. The worker picks the
// threaded build only on a cross-origin isolated page, so on a static host that cannot send the
// COOP/COEP headers this first tries to make the page isolated, before app.js runs:
//
// - Only the published site asks for it: `./build.sh dist` writes
//   <meta name="paritylab-coi-fallback" content="coi-sw.js"> into dist/index.html. The dev server
//   (`paritylab serve`) sends the headers itself, or, with --no-isolation, means the page to stay on
//   one thread; its page has no such meta and never registers the service worker.
// - The page is already isolated (the host sends the headers, or the service worker already
//   controls this page): nothing to do.
// - Otherwise, where service workers exist, register coi-sw.js (scope: the page's folder), which
//   answers this site's requests with the headers added; once it is active, reload once. A flag in
//   sessionStorage says the reload happened: a page still not isolated after it (the browser or the
//   host defeated the service worker) stays on one thread, and the page shows its notice.
//
// document.documentElement.dataset.coi tells what happened (tests read it): 'headers' (isolated
// without the fallback), 'service-worker' (isolated by it), 'unavailable' (no service worker could
// be registered), 'gave-up' (still not isolated after the reload), 'off' (not isolated and no
// fallback asked for).

const RELOADED = 'paritylab-coi-reloaded';
/** How long to wait for the service worker to become active before giving up. */
const ACTIVATE_MS = 10_000;

function note(state) {
  document.documentElement.dataset.coi = state;
}

function sessionFlag(set) {
  try {
    if (set === undefined) return sessionStorage.getItem(RELOADED) === '1';
    if (set) sessionStorage.setItem(RELOADED, '1');
    else sessionStorage.removeItem(RELOADED);
  } catch {
    // Storage is blocked: no flag, so never reload (see below).
    return set === undefined ? null : false;
  }
  return true;
}

/** The page's folder, where the service worker lives and what it controls. */
function folder() {
  return new URL('.', location.href);
}

/** Resolves once `registration` has an active worker, or rejects after ACTIVATE_MS. */
function activated(registration) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the service worker did not activate')), ACTIVATE_MS);
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    if (registration.active) return done();
    const worker = registration.installing || registration.waiting;
    if (!worker) return reject(new Error('no service worker is installing'));
    worker.addEventListener('statechange', () => {
      if (worker.state === 'activated') done();
      else if (worker.state === 'redundant') reject(new Error('the service worker failed to install'));
    });
  });
}

/** Returns true when the page is about to reload (then app.js must not start). */
async function isolate() {
  const fallback = document.querySelector('meta[name="paritylab-coi-fallback"]');
  const sw = 'serviceWorker' in navigator ? navigator.serviceWorker : null;
  if (!fallback) {
    note(self.crossOriginIsolated ? 'headers' : 'off');
    // A fallback worker left on this origin by a published copy served here earlier: remove it,
    // so this server's own headers (or their absence) decide.
    sw?.getRegistrations?.().then(
      (regs) => regs.filter((r) => /\/coi-sw\.js$/.test(r.active?.scriptURL || '')).forEach((r) => r.unregister()),
      () => {},
    );
    return false;
  }
  if (self.crossOriginIsolated) {
    sessionFlag(false);
    note(sw?.controller ? 'service-worker' : 'headers');
    return false;
  }
  if (!sw || !self.isSecureContext) {
    note('unavailable');
    return false;
  }
  const reloaded = sessionFlag();
  if (reloaded !== false) {
    // Reloaded already (still not isolated), or no storage for the flag (a reload could loop).
    note(reloaded ? 'gave-up' : 'unavailable');
    return false;
  }
  try {
    const script = new URL(fallback.content || 'coi-sw.js', folder());
    const registration = await sw.register(script, { scope: folder().pathname });
    // Some environments stub register() out (a resolved promise without a registration).
    if (!registration || typeof registration !== 'object') throw new Error('service workers are blocked');
    await activated(registration);
  } catch (err) {
    console.warn(`paritylab: staying on one thread (${err.message})`);
    note('unavailable');
    return false;
  }
  if (!sessionFlag(true)) {
    note('unavailable');
    return false;
  }
  location.reload();
  return true;
}

if (!(await isolate())) await import('../app.js');
