/* Service worker of 网格通 (/field): the app shell offline, the worker's tasks readable offline.
 *
 * Served by map_app/field_page.py at /sw.js with VERSION and PRECACHE filled in; a changed file
 * changes VERSION, so the phone installs the new worker and drops the old caches.
 *   - shell (/field): network first, the cached copy when offline;
 *   - versioned static files (?v=hash): cache first (they never change under one URL);
 *   - GET /api/field/{me,tasks,events/<id>,categories,checkpoints,patrols}: network first, cache
 *     fallback (marked with the header X-From-Cache so the page can say the data is offline);
 *   - event photos: cache first (a photo never changes);
 *   - POSTs and everything else: not touched (the outbox in the page owns sending).
 */
'use strict';

const VERSION = '__VERSION__';
const PRECACHE = '__PRECACHE__';
const SHELL_CACHE = 'field-shell-' + VERSION;
const DATA_CACHE = 'field-data-v1';
const DATA_PATHS = /^\/api\/field\/(me|tasks|categories|checkpoints|patrols|coverage|events\/\d+)$/;
const PHOTO_PATHS = /^\/events\/\d+\/photos\/\d+$/;

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(SHELL_CACHE).then((cache) => cache.addAll(PRECACHE)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(caches.keys().then((keys) => Promise.all(
    keys.filter((k) => k.startsWith('field-shell-') && k !== SHELL_CACHE).map((k) => caches.delete(k)),
  )).then(() => self.clients.claim()));
});

// Data is keyed without its query string (tasks?lon=&lat= changes with every step): the
// last answer is what the phone shows offline.
function dataKey(url) {
  return url.origin + url.pathname;
}

async function networkFirst(request, cacheName, key) {
  const cache = await caches.open(cacheName);
  try {
    const response = await fetch(request);
    if (response.ok && response.type === 'basic') await cache.put(key, response.clone());
    return response;
  } catch (err) {
    const cached = await cache.match(key);
    if (!cached) throw err;
    const headers = new Headers(cached.headers);
    headers.set('X-From-Cache', '1');
    return new Response(await cached.blob(), {status: cached.status, statusText: cached.statusText, headers: headers});
  }
}

async function cacheFirst(request, cacheName) {
  const cache = await caches.open(cacheName);
  const cached = await cache.match(request);
  if (cached) return cached;
  const response = await fetch(request);
  if (response.ok && response.type === 'basic') await cache.put(request, response.clone());
  return response;
}

async function shell(request) {
  const cache = await caches.open(SHELL_CACHE);
  try {
    const response = await fetch(request);
    // A redirect (signed out → /login) or an error page is not a shell to keep.
    if (response.ok && response.type === 'basic' && !response.redirected) await cache.put('/field', response.clone());
    return response;
  } catch (err) {
    const cached = await cache.match('/field');
    if (cached) return cached;
    throw err;
  }
}

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET') return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (request.mode === 'navigate' && (url.pathname === '/field' || url.pathname === '/field/')) {
    event.respondWith(shell(request));
  } else if (url.pathname.startsWith('/field/') && url.searchParams.has('v')) {
    event.respondWith(cacheFirst(request, SHELL_CACHE));
  } else if (url.pathname === '/field/manifest.webmanifest') {
    event.respondWith(networkFirst(request, SHELL_CACHE, url.href));
  } else if (DATA_PATHS.test(url.pathname)) {
    event.respondWith(networkFirst(request, DATA_CACHE, dataKey(url)));
  } else if (PHOTO_PATHS.test(url.pathname)) {
    event.respondWith(cacheFirst(request, DATA_CACHE));
  }
});

// The page asks for a data cache wipe on sign-out: another person's tasks must not stay behind.
self.addEventListener('message', (event) => {
  if (event.data === 'clear-data') event.waitUntil(caches.delete(DATA_CACHE));
});
