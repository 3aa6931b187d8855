/* The outbox: what the phone has to send, kept in IndexedDB until the server confirmed it.
 *
 *   dvmapOutbox.add(item)        → Promise<item>   queue and try to send at once
 *   dvmapOutbox.flush()          → Promise          send what is pending, strictly in order
 *   dvmapOutbox.list()           → Promise<item[]>  everything still kept (pending, conflict, failed)
 *   dvmapOutbox.remove(seq)      → discard one item (the user's choice for a conflict/failure)
 *   dvmapOutbox.retry(seq)       → put a conflict/failed item back to pending
 *   dvmapOutbox.subscribe(fn)    → fn({items, pending, sent}) after every change; sent = item just confirmed
 *   dvmapOutbox.setOwner(userId) → only this user's items are listed and sent (shared phones)
 *
 * item: {client_key (crypto.randomUUID), kind ('report'|'action'|'patrol-start'|'patrol-points'|
 *   'patrol-end'|'checkin'), url, fields (form fields, or the JSON body when json: true), photos
 *   (Blobs), created_at, status ('pending'|'sending'|'conflict'|'failed'), message, meta (for the UI)}.
 *
 * Every report and action goes through here, online or not, so there is one code path. Items
 * are sent one at a time in the order they were made (a patrol's points after its start,
 * an action after the report it follows); the server's idempotency key (client_key) makes a
 * resend after a lost answer harmless. Outcomes: 2xx → removed; network error, 401 (signed
 * out: nothing may be lost), 408, 429, 5xx → stays pending and is retried with backoff; 409 →
 * 'conflict' with the server's bilingual message; any other 4xx → 'failed' with its message.
 */
(function () {
  'use strict';

  const DB_NAME = 'dvmap-field';
  const STORE = 'outbox';
  const PERIOD_MS = 20000;
  const listeners = [];
  let dbPromise = null;
  let flushing = null;
  let backoffUntil = 0;
  let failures = 0;
  let lastAuthError = false;
  // Items belong to who made them: another person signing in on the same phone never sends them.
  let owner = null;

  function open() {
    if (!dbPromise) {
      dbPromise = new Promise((resolve, reject) => {
        const req = indexedDB.open(DB_NAME, 1);
        req.onupgradeneeded = () => {
          const store = req.result.createObjectStore(STORE, {keyPath: 'seq', autoIncrement: true});
          store.createIndex('client_key', 'client_key', {unique: true});
        };
        req.onsuccess = () => resolve(req.result);
        req.onerror = () => reject(req.error);
      });
    }
    return dbPromise;
  }

  async function tx(mode, fn) {
    const db = await open();
    return new Promise((resolve, reject) => {
      const t = db.transaction(STORE, mode);
      const store = t.objectStore(STORE);
      let result;
      Promise.resolve(fn(store)).then((r) => { result = r; });
      t.oncomplete = () => resolve(result);
      t.onerror = () => reject(t.error);
      t.onabort = () => reject(t.error);
    });
  }

  function request(req) {
    return new Promise((resolve, reject) => {
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
  }

  function list() {
    return tx('readonly', (store) => request(store.getAll()));
  }

  async function put(item) {
    return tx('readwrite', (store) => request(store.put(item)));
  }

  async function notify(sent) {
    const items = await list();
    const mine = items.filter((i) => (i.owner || null) === owner);
    const pending = mine.filter((i) => i.status === 'pending' || i.status === 'sending').length;
    const state = {items: mine, pending: pending, sent: sent || null, authError: lastAuthError};
    listeners.forEach((fn) => { try { fn(state); } catch (e) { console.error(e); } });
  }

  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return 'k-' + Date.now().toString(36) + '-' + Math.random().toString(36).slice(2);
  }

  async function add(item) {
    const record = Object.assign({
      client_key: uuid(), fields: {}, photos: [], created_at: new Date().toISOString(),
      status: 'pending', message: null, meta: {}, owner: owner,
    }, item);
    record.seq = await tx('readwrite', (store) => request(store.add(record)));
    await notify();
    flush();
    return record;
  }

  function body(item) {
    if (item.json) return {body: JSON.stringify(item.fields), headers: {'Content-Type': 'application/json'}};
    const form = new FormData();
    form.append('client_key', item.client_key);
    Object.keys(item.fields || {}).forEach((k) => {
      const v = item.fields[k];
      if (v !== null && v !== undefined && v !== '') form.append(k, String(v));
    });
    (item.photos || []).forEach((blob, i) => form.append('photo', blob, `photo-${i + 1}.jpg`));
    return {body: form, headers: {}};
  }

  async function readMessage(response) {
    try {
      const data = await response.json();
      return {zh: data.message_zh || data.error || '', en: data.message_en || data.error || '', data: data};
    } catch (e) {
      return {zh: `请求失败(${response.status})`, en: `request failed (${response.status})`, data: null};
    }
  }

  async function sendOne(item) {
    item.status = 'sending';
    await put(item);
    const b = body(item);
    const headers = Object.assign({'X-Requested-With': 'fetch'}, b.headers);
    const csrf = document.querySelector('meta[name=csrf-token]');
    if (csrf) headers['X-CSRF-Token'] = csrf.content;
    let response;
    try {
      response = await fetch(item.url, {method: 'POST', body: b.body, headers: headers, credentials: 'same-origin'});
    } catch (e) {
      item.status = 'pending';
      await put(item);
      return 'retry';
    }
    if (response.ok) {
      let data = null;
      try { data = await response.json(); } catch (e) { /* empty body */ }
      await tx('readwrite', (store) => request(store.delete(item.seq)));
      item.result = data;
      item.status = 'sent';
      lastAuthError = false;
      return 'sent';
    }
    const msg = await readMessage(response);
    const s = response.status;
    if (s === 401 || s === 408 || s === 429 || s >= 500) {
      lastAuthError = s === 401;
      item.status = 'pending';
      item.message = msg;
      await put(item);
      return 'retry';
    }
    item.status = s === 409 ? 'conflict' : 'failed';
    item.message = msg;
    await put(item);
    return 'done';
  }

  async function flushNow() {
    if (Date.now() < backoffUntil) return;
    for (;;) {
      const items = (await list()).sort((a, b) => a.seq - b.seq);
      const next = items.find((i) => (i.status === 'pending' || i.status === 'sending') && (i.owner || null) === owner);
      if (!next) { failures = 0; return; }
      const outcome = await sendOne(next);
      if (outcome === 'retry') {
        failures += 1;
        backoffUntil = Date.now() + Math.min(60000, 1000 * 2 ** Math.min(failures, 6));
        await notify();
        return;
      }
      failures = 0;
      await notify(outcome === 'sent' ? next : null);
    }
  }

  let again = false;

  function flush() {
    if (flushing) {
      again = true;  // an item added while a flush is finishing is not left for the next tick
      return flushing;
    }
    flushing = flushNow().catch((e) => console.error('outbox', e)).finally(() => {
      flushing = null;
      if (again) { again = false; flush(); }
    });
    return flushing;
  }

  async function remove(seq) {
    await tx('readwrite', (store) => request(store.delete(seq)));
    await notify();
  }

  async function retry(seq) {
    const item = await tx('readonly', (store) => request(store.get(seq)));
    if (!item) return;
    item.status = 'pending';
    item.message = null;
    await put(item);
    backoffUntil = 0;
    await notify();
    flush();
  }

  function setOwner(id) {
    owner = id || null;
    backoffUntil = 0;
    flush();
  }

  function subscribe(fn) {
    listeners.push(fn);
    notify();
  }

  window.addEventListener('online', () => { backoffUntil = 0; flush(); });
  setInterval(() => { flush(); }, PERIOD_MS);
  window.addEventListener('load', () => flush());

  window.dvmapOutbox = {add: add, flush: flush, list: list, remove: remove, retry: retry, subscribe: subscribe, setOwner: setOwner,
    uuid: uuid, now: () => { backoffUntil = 0; return flush(); }};
})();
