/* 网格通 — the grid worker's phone app (served by map_app/field_page.py, API map_app/field_api.py).
 *
 * Plain JavaScript, no build step. The map fills the screen; four tabs (任务 / 上报 / 巡查 / 我的)
 * fill a bottom sheet (a side panel on tablets). Everything the worker sends — reports, actions,
 * patrol points, check-ins — goes through window.dvmapOutbox (IndexedDB), online or not, so an
 * item is confirmed only once the server answered 2xx. Reads come through the service worker
 * (/sw.js), which answers from its cache when there is no signal.
 */
(function () {
  'use strict';

  // -- language ------------------------------------------------------------------------------
  const T = {
    tasks: ['任务', 'Tasks'], report: ['上报', 'Report'], patrol: ['巡查', 'Patrol'], me: ['我的', 'Me'],
    myTasks: ['我的任务', 'My tasks'], noTasks: ['暂无待办任务', 'No open tasks'],
    overdue: ['超期', 'Overdue'], due: ['时限', 'Due'], reported: ['上报时间', 'Reported'],
    address: ['地址', 'Address'], desc: ['描述', 'Description'], position: ['位置', 'Position'],
    before: ['处置前', 'Before'], after: ['处置后', 'After'], verify: ['核查', 'Verify'], reportPh: ['上报照片', 'Report photos'],
    noPhoto: ['无照片', 'No photo'], timeline: ['处理经过', 'Timeline'], actions: ['办理', 'Actions'],
    note: ['说明 / 原因', 'Note / reason'], noteNeeded: ['请填写说明或原因', 'Please write a note or reason'],
    takePhoto: ['拍照', 'Photo'], back: ['← 返回任务', '← Back to tasks'],
    queued: ['待发送', 'Queued'], sentOk: ['已提交', 'Submitted'], conflict: ['冲突', 'Conflict'],
    waitSend: ['已保存在手机,联网后自动发送', 'Saved on the phone; sent when online'],
    category: ['事件类别', 'Category'], choose: ['请选择', 'Choose'], urgency: ['紧急程度', 'Urgency'],
    normal: ['一般', 'Normal'], urgent: ['紧急', 'Urgent'], emergency: ['特急', 'Emergency'],
    photos: ['照片', 'Photos'], point: ['上报位置', 'Location'], here: ['在此上报', 'Report here'],
    tapHint: ['或在地图上点选位置', 'or tap the map to set the point'], noPoint: ['尚未选择位置', 'No point yet'],
    gps: ['GPS定位', 'GPS'], tap: ['地图点选', 'tapped'], accuracy: ['精度', 'accuracy'],
    submit: ['提交', 'Submit'], needCat: ['请选择事件类别', 'Choose a category'],
    needDesc: ['请填写描述', 'Write a description'], needPoint: ['请选择上报位置', 'Set the location'],
    reportedOk: ['已上报', 'Reported'], myReports: ['本次上报', 'This session'],
    startPatrol: ['开始巡查', 'Start patrol'], endPatrol: ['结束巡查', 'End patrol'],
    distance: ['里程', 'Distance'], duration: ['时长', 'Duration'], points: ['轨迹点', 'Points'],
    checkpoints: ['关键点位签到', 'Check-in points'], checkin: ['签到', 'Check in'],
    tooFar: ['距离过远', 'too far'], needPatrol: ['开始巡查后可签到', 'Start a patrol to check in'],
    weekPatrols: ['本周巡查', 'This week'], noPatrols: ['本周尚无巡查', 'No patrols this week'],
    active: ['进行中', 'active'], patrolDone: ['巡查已上传', 'Patrol uploaded'],
    pending: ['待发送', 'To send'], nothingPending: ['没有待发送的内容', 'Nothing to send'],
    retry: ['重试', 'Retry'], discard: ['放弃', 'Discard'], sendNow: ['立即发送', 'Send now'],
    language: ['English', '中文'], signOut: ['退出', 'Sign out'], desktop: ['桌面版地图', 'Desktop map'],
    offline: ['离线 · 联网后自动发送', 'Offline · will send when online'],
    cached: ['离线数据', 'Offline data'], signIn: ['登录已过期,请重新登录', 'Signed out: sign in again'],
    locating: ['正在定位…', 'Locating…'], noGps: ['无法定位', 'No position'],
    kindReport: ['上报', 'Report'], kindAction: ['办理', 'Action'], kindPatrol: ['巡查', 'Patrol'],
    kindCheckin: ['签到', 'Check-in'], grids: ['我的网格', 'My grids'],
    signOutPending: ['还有待发送的内容,退出后保留在本机,下次登录时发送。确定退出?',
      'Items are still waiting; they stay on this phone and are sent at your next sign-in. Sign out?'],
    coverage: ['本周巡查覆盖率', 'Patrol coverage this week'], lowCover: ['覆盖不足', 'Low coverage'], times: ['次', ' patrols'],
    loadFailed: ['加载失败', 'Could not load'], checkedIn: ['已签到', 'Checked in'],
  };
  let lang = localStorage.getItem('dvmap-lang') || document.body.dataset.lang || 'zh';
  const t = (key) => (T[key] ? T[key][lang === 'en' ? 1 : 0] : key);
  const pick = (zh, en) => (lang === 'en' ? (en || zh) : (zh || en)) || '';
  const esc = (s) => String(s === null || s === undefined ? '' : s).replace(/[&<>"']/g,
    (c) => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'}[c]));
  const $ = (sel, root) => (root || document).querySelector(sel);

  // -- state -----------------------------------------------------------------------------------
  const S = {
    tab: 'tasks', me: null, tasks: [], categories: [], checkpoints: null, eventId: null, event: null,
    pos: null, watch: null, fromCache: false, outbox: {items: [], pending: 0}, reportPoint: null,
    reportPhotos: [], actionPhotos: [], reports: [], weekPatrols: [], authError: false,
    patrol: JSON.parse(localStorage.getItem('dvmap-patrol') || 'null'),
  };

  // -- helpers ---------------------------------------------------------------------------------
  async function getJSON(url) {
    const response = await fetch(url, {credentials: 'same-origin', headers: {Accept: 'application/json'}});
    if (response.status === 401) {
      if (navigator.onLine) location.href = '/login?next=/field';
      throw new Error('401');
    }
    if (!response.ok) throw new Error(String(response.status));
    S.fromCache = Boolean(response.headers.get('X-From-Cache'));  // the latest answer says where data came from
    return response.json();
  }

  function metres(a, b) {  // haversine, good to a metre at village scale
    const R = 6371008.8, rad = Math.PI / 180;
    const dLat = (b.lat - a.lat) * rad, dLon = (b.lon - a.lon) * rad;
    const h = Math.sin(dLat / 2) ** 2 + Math.cos(a.lat * rad) * Math.cos(b.lat * rad) * Math.sin(dLon / 2) ** 2;
    return 2 * R * Math.asin(Math.sqrt(h));
  }
  const fmtDist = (m) => (m === null || m === undefined ? '' : m < 1000 ? `${Math.round(m)} m` : `${(m / 1000).toFixed(1)} km`);
  function fmtDur(s) {
    s = Math.max(0, Math.round(s));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    return h ? `${h}:${String(m).padStart(2, '0')}:${String(sec).padStart(2, '0')}` : `${m}:${String(sec).padStart(2, '0')}`;
  }
  function isoWeek(d) {
    const x = new Date(Date.UTC(d.getFullYear(), d.getMonth(), d.getDate()));
    const day = x.getUTCDay() || 7;
    x.setUTCDate(x.getUTCDate() + 4 - day);
    const y0 = new Date(Date.UTC(x.getUTCFullYear(), 0, 1));
    return `${x.getUTCFullYear()}-W${String(Math.ceil(((x - y0) / 86400000 + 1) / 7)).padStart(2, '0')}`;
  }
  async function resizeAll(files) {
    const out = [];
    for (const f of files) out.push(await window.dvmapPhoto.resize(f, {maxSide: 1600, quality: 0.8}));
    return out;
  }
  function thumbs(blobs) {
    return blobs.map((b) => `<img alt="" src="${URL.createObjectURL(b)}">`).join('');
  }

  // -- map -------------------------------------------------------------------------------------
  const map = L.map('map', {zoomControl: false, attributionControl: false, minZoom: 8, maxZoom: 19, zoomSnap: 0.5});
  L.control.zoom({position: 'topright'}).addTo(map);
  L.control.scale({imperial: false, position: 'bottomright'}).addTo(map);
  map.setView([30.55, 120.0], 11);
  const layers = {
    grids: L.layerGroup().addTo(map), tasks: L.layerGroup().addTo(map), me: L.layerGroup().addTo(map),
    report: L.layerGroup().addTo(map), track: L.layerGroup().addTo(map), checkpoints: L.layerGroup().addTo(map),
  };
  window.fieldMap = map;  // for tests and debugging

  function drawGrids() {
    layers.grids.clearLayers();
    if (!S.me || !S.me.grids) return;
    L.geoJSON(S.me.grids, {
      style: {color: '#12355b', weight: 2, fillColor: '#12355b', fillOpacity: 0.06, dashArray: '6 4'},
      onEachFeature: (f, layer) => layer.bindTooltip(esc(f.properties.name || f.properties.code),
        {permanent: false, direction: 'center'}),
    }).addTo(layers.grids);
  }

  function stateColor(task) {
    if (task.overdue) return '#c81e1e';
    return {dispatched: '#bf8700', in_progress: '#1f6feb', postponed: '#8957e5', handled: '#0969da',
      reported: '#d1242f', accepted: '#e16f24'}[task.state] || '#334155';
  }

  function drawTasks() {
    layers.tasks.clearLayers();
    S.tasks.forEach((task) => {
      if (task.lon === null || task.lat === null) return;
      const m = L.circleMarker([task.lat, task.lon], {radius: 11, weight: 3, color: '#fff', fillColor: stateColor(task),
        fillOpacity: 1, className: 'task-marker'});
      m.on('click', (e) => { L.DomEvent.stopPropagation(e); openEvent(task.id); });
      m.addTo(layers.tasks);
    });
  }

  function drawMe() {
    layers.me.clearLayers();
    if (!S.pos) return;
    const ll = [S.pos.lat, S.pos.lon];
    L.circle(ll, {radius: S.pos.acc || 0, color: '#2563eb', weight: 1, fillOpacity: 0.12, interactive: false}).addTo(layers.me);
    L.circleMarker(ll, {radius: 8, color: '#fff', weight: 3, fillColor: '#2563eb', fillOpacity: 1, interactive: false})
      .addTo(layers.me);
  }

  function drawReportPoint() {
    layers.report.clearLayers();
    const p = S.reportPoint;
    if (!p || S.tab !== 'report') return;
    L.marker([p.lat, p.lon], {icon: L.divIcon({className: '', html: '<div class="report-pin"></div>',
      iconSize: [26, 26], iconAnchor: [13, 30]}), interactive: false}).addTo(layers.report);
    if (p.acc) L.circle([p.lat, p.lon], {radius: p.acc, color: '#db2777', weight: 1, fillOpacity: 0.08, interactive: false})
      .addTo(layers.report);
  }

  function drawTrack() {
    layers.track.clearLayers();
    const track = (S.patrol && S.patrol.track) || S.lastTrack;
    if (track && track.length > 1) {
      L.polyline(track, {color: '#16a34a', weight: 5, opacity: 0.85}).addTo(layers.track);
    }
  }

  function drawCheckpoints() {
    layers.checkpoints.clearLayers();
    if (!S.checkpoints || S.tab !== 'patrol') return;
    (S.checkpoints.features || []).forEach((f) => {
      const [lon, lat] = f.geometry.coordinates;
      L.circle([lat, lon], {radius: f.properties.radius_m || 50, color: '#9333ea', weight: 2, fillOpacity: 0.1})
        .bindTooltip(esc(f.properties.name)).addTo(layers.checkpoints);
    });
  }

  // Centre a point in the part of the map the sheet leaves free (above it on a phone, beside it on a tablet).
  function focus(lat, lon, minZoom) {
    const zoom = Math.max(map.getZoom(), minZoom);
    const r = sheet.classList.contains('closed') ? null : sheet.getBoundingClientRect();
    const m = map.getContainer().getBoundingClientRect();
    let dx = 0, dy = 0;
    if (r && r.width >= m.width - 2) dy = Math.max(0, m.bottom - r.top) / 2;
    else if (r) dx = -Math.max(0, r.right - m.left) / 2;
    const p = map.project([lat, lon], zoom).add([dx, dy]);
    map.setView(map.unproject(p, zoom), zoom);
  }

  map.on('click', (e) => {
    if (S.tab !== 'report') return;
    S.reportPoint = {lon: e.latlng.lng, lat: e.latlng.lat, acc: null, source: 'tap'};
    drawReportPoint();
    renderPoint();
  });

  // -- location --------------------------------------------------------------------------------
  function startWatch() {
    if (!navigator.geolocation || S.watch !== null) return;
    S.watch = navigator.geolocation.watchPosition(onPosition, () => { $('#locate').classList.remove('on'); },
      {enableHighAccuracy: true, maximumAge: 5000, timeout: 30000});
  }

  let centredOnce = false;
  function onPosition(p) {
    const first = !S.pos;
    S.pos = {lon: p.coords.longitude, lat: p.coords.latitude, acc: p.coords.accuracy, t: Date.now()};
    $('#locate').classList.add('on');
    drawMe();
    patrolPoint(S.pos);
    if (S.wantHere && S.tab === 'report') reportHere();
    if (first) {
      refreshTasks();
      if (!centredOnce && S.tab !== 'report') { /* keep the grid view until asked */ }
    }
    if (S.tab === 'tasks' && !S.eventId) renderTasks();
    if (S.tab === 'patrol') renderPatrolStats();
  }

  $('#locate').addEventListener('click', () => {
    startWatch();
    if (S.pos) { centredOnce = true; focus(S.pos.lat, S.pos.lon, 16); }
  });

  // -- sheet and tabs --------------------------------------------------------------------------
  const sheet = $('#sheet');
  const body = $('#sheet-body');
  function setSheet(mode) {
    sheet.classList.toggle('peek', mode === 'peek');
    sheet.classList.toggle('closed', mode === 'closed');
  }
  $('#sheet-handle').addEventListener('click', () => setSheet(sheet.classList.contains('peek') ? 'open' : 'peek'));

  function selectTab(tab) {
    S.tab = tab;
    S.eventId = null;
    document.querySelectorAll('#tabs button').forEach((b) => b.classList.toggle('active', b.dataset.tab === tab));
    setSheet('open');
    render();
    drawReportPoint();
    drawCheckpoints();
    if (tab === 'tasks') refreshTasks();
    if (tab === 'patrol') loadPatrolData();
  }
  document.querySelectorAll('#tabs button').forEach((b) => b.addEventListener('click', () => selectTab(b.dataset.tab)));

  function render() {
    if (S.tab === 'tasks') return S.eventId ? renderEvent() : renderTasks();
    if (S.tab === 'report') return renderReport();
    if (S.tab === 'patrol') return renderPatrol();
    return renderMe();
  }

  function renderChrome() {
    document.querySelectorAll('#tabs button').forEach((b) => { $('span', b).textContent = t(b.dataset.tab); });
    $('#locate').setAttribute('aria-label', pick('我的位置', 'My location'));
    const n = S.outbox.pending;
    const pendingBtn = $('#pending');
    pendingBtn.hidden = n === 0;
    pendingBtn.textContent = `${t('pending')} ${n}`;
    $('#tab-pending').hidden = n === 0;
    $('#tab-pending').textContent = String(n);
    const off = !navigator.onLine;
    $('#offline').hidden = !(off || S.fromCache);
    $('#offline').textContent = off ? t('offline') : t('cached');
    $('#auth-msg').hidden = !S.authError;
    $('#auth-msg').textContent = t('signIn');
    document.documentElement.lang = lang === 'en' ? 'en' : 'zh-CN';
  }
  $('#pending').addEventListener('click', () => selectTab('me'));
  window.addEventListener('online', () => { S.fromCache = false; renderChrome(); refreshTasks(); });
  window.addEventListener('offline', renderChrome);

  // -- tasks -----------------------------------------------------------------------------------
  async function refreshTasks() {
    const q = S.pos ? `?lon=${S.pos.lon.toFixed(6)}&lat=${S.pos.lat.toFixed(6)}` : '';
    try {
      const data = await getJSON('/api/field/tasks' + q);
      S.tasks = data.tasks || [];
      S.tasksError = null;
    } catch (e) {
      S.tasksError = e.message;
    }
    drawTasks();
    renderChrome();
    if (S.tab === 'tasks' && !S.eventId) renderTasks();
  }

  function queuedFor(eventId) {
    return S.outbox.items.filter((i) => i.kind === 'action' && i.meta && i.meta.event_id === eventId);
  }

  function renderTasks() {
    const rows = S.tasks.map((task) => {
      const d = S.pos && task.lat !== null ? metres(S.pos, task) : task.distance_m;
      const q = queuedFor(task.id).length ? `<span class="queued">${t('queued')}</span>` : '';
      return `<li><button type="button" class="task" data-id="${task.id}">
        <span class="grow"><span class="title">${esc(pick(task.subclass_zh, task.subclass_en))}</span>
          <span class="row"><span class="state">${esc(pick(task.state_zh, task.state_en))}</span>
          ${task.overdue ? `<span class="overdue">${t('overdue')}</span>` : ''}${q}
          <span class="muted">${t('due')} ${esc(task.due_local || '—')}</span></span>
          <span class="desc">${esc(task.description || task.address || '')}</span></span>
        <span class="dist">${fmtDist(d)}</span></button></li>`;
    }).join('');
    body.innerHTML = `<h2>${t('myTasks')} <span class="muted">${S.tasks.length}</span></h2>
      ${S.tasksError && !S.tasks.length ? `<div class="msg err">${t('loadFailed')}</div>` : ''}
      ${S.tasks.length ? `<ul class="tasks" data-testid="tasks">${rows}</ul>` : `<p class="muted">${t('noTasks')}</p>`}`;
    body.querySelectorAll('.task').forEach((b) => b.addEventListener('click', () => openEvent(Number(b.dataset.id))));
  }

  async function openEvent(id, keepMessage) {
    if (S.tab !== 'tasks') selectTab('tasks');
    S.eventId = id;
    S.actionPhotos = [];
    setSheet('open');
    if (!keepMessage) S.eventMessage = null;
    try {
      S.event = await getJSON(`/api/field/events/${id}`);
    } catch (e) {
      body.innerHTML = `<button class="btn" type="button" id="back">${t('back')}</button>
        <div class="msg err">${t('loadFailed')} (${esc(e.message)})</div>`;
      $('#back').addEventListener('click', () => selectTab('tasks'));
      return;
    }
    const ev = S.event.event;
    if (ev.lat !== null && ev.lon !== null) focus(ev.lat, ev.lon, 17);
    renderEvent();
    renderChrome();
  }

  function photoColumn(step, label, photos) {
    const mine = photos.filter((p) => p.step === step);
    const first = mine[0];
    const img = first ? `<a href="${esc(first.url)}" target="_blank" rel="noopener"><img alt="${esc(label)}"
      src="${esc(first.url)}" loading="lazy"></a>` : `<div class="none">${t('noPhoto')}</div>`;
    return `<div class="step" data-step="${step}" data-count="${mine.length}"><div class="label">${esc(label)}</div>${img}
      ${mine.length > 1 ? `<div class="more">+${mine.length - 1}</div>` : ''}</div>`;
  }

  function renderEvent() {
    const data = S.event;
    if (!data) return;
    const ev = data.event, photos = data.photos || [];
    const queued = queuedFor(ev.id);
    const reportPhotos = photos.filter((p) => p.step === 'report');
    const needNote = (data.actions || []).some((a) => a.note_required);
    const timeline = (data.timeline || []).map((h) => `<li><div><b>${esc(pick(h.label_zh, h.label_en))}</b>
      · ${esc(h.actor || '')}</div><div class="when">${esc(h.at_local || '')}</div>
      ${h.note ? `<div>${esc(h.note)}</div>` : ''}</li>`).join('');
    const buttons = queued.length ? `<div class="msg wait">${t('waitSend')}</div>` : (data.actions || []).map((a) =>
      `<button type="button" class="btn ${a.action === 'start' || a.action === 'handle' ? 'primary' : ''}"
        data-action="${esc(a.action)}" data-note="${a.note_required ? 1 : 0}">${esc(pick(a.label_zh, a.label_en))}</button>`).join('');
    const msg = S.eventMessage ? `<div class="msg ${S.eventMessage.cls}" data-testid="event-message">${esc(S.eventMessage.text)}</div>` : '';
    body.innerHTML = `<button class="btn" type="button" id="back">${t('back')}</button>
      <div class="evt" data-event="${ev.id}" data-version="${ev.version}" data-state="${esc(ev.state)}">
      <h2 style="margin-top:10px">${esc(pick(ev.subclass_zh, ev.subclass_en))}
        <span class="state">${esc(pick(ev.state_zh, ev.state_en))}</span>
        ${ev.overdue ? `<span class="overdue">${t('overdue')}</span>` : ''}
        ${queued.length ? `<span class="queued">${t('queued')} ${queued.length}</span>` : ''}</h2>
      <dl class="facts">
        <div><dt>${t('desc')}</dt><dd>${esc(ev.description)}</dd></div>
        ${ev.address ? `<div><dt>${t('address')}</dt><dd>${esc(ev.address)}</dd></div>` : ''}
        <div><dt>${t('due')}</dt><dd>${esc(ev.due_local || '—')}</dd></div>
        <div><dt>${t('reported')}</dt><dd>${esc(ev.reported_local || '')}</dd></div>
        ${S.pos && ev.lat !== null ? `<div><dt>${t('position')}</dt><dd>${fmtDist(metres(S.pos, ev))}</dd></div>` : ''}
      </dl>
      ${reportPhotos.length ? `<h3>${t('reportPh')}</h3><div class="thumbs">${reportPhotos.map((p) =>
        `<img alt="" loading="lazy" src="${esc(p.url)}">`).join('')}</div>` : ''}
      <div class="steps" data-testid="steps">${photoColumn('before', t('before'), photos)}
        ${photoColumn('after', t('after'), photos)}${photoColumn('verify', t('verify'), photos)}</div>
      ${(data.actions || []).length || queued.length ? `<h3>${t('actions')}</h3>` : ''}
      ${(data.actions || []).length && !queued.length ? `
        ${needNote ? `<label class="field" for="note">${t('note')}</label><textarea id="note" maxlength="2000"></textarea>` : ''}
        <div class="row" style="margin-top:8px"><label class="btn photo-pick">${t('takePhoto')}
          <input id="action-photo" type="file" accept="image/*" capture="environment" multiple></label>
          <div class="thumbs grow" id="action-thumbs"></div></div>` : ''}
      <div class="actions" data-testid="event-actions">${buttons}</div>${msg}
      <h3>${t('timeline')}</h3><ul class="timeline" data-testid="timeline">${timeline}</ul></div>`;
    $('#back').addEventListener('click', () => selectTab('tasks'));
    const input = $('#action-photo');
    if (input) {
      input.addEventListener('change', async () => {
        S.actionPhotos = S.actionPhotos.concat(await resizeAll(Array.from(input.files)));
        input.value = '';
        $('#action-thumbs').innerHTML = thumbs(S.actionPhotos);
      });
    }
    body.querySelectorAll('.actions .btn').forEach((b) => b.addEventListener('click', () => act(b)));
  }

  async function act(button) {
    const ev = S.event.event;
    const note = ($('#note') && $('#note').value.trim()) || '';
    if (button.dataset.note === '1' && !note) {
      S.eventMessage = {cls: 'err', text: t('noteNeeded')};
      renderEvent();
      return;
    }
    const fields = {action: button.dataset.action, expected_version: ev.version, note: note};
    if (S.pos) Object.assign(fields, {lon: S.pos.lon, lat: S.pos.lat, accuracy_m: Math.round(S.pos.acc)});
    S.eventMessage = null;  // the queued item says 待发送 where the buttons were
    await window.dvmapOutbox.add({kind: 'action', url: `/api/field/events/${ev.id}/actions`, fields: fields,
      photos: S.actionPhotos, meta: {event_id: ev.id, label: button.textContent.trim()}});
    S.actionPhotos = [];
    renderEvent();
  }

  // -- report ----------------------------------------------------------------------------------
  function renderReport() {
    const cats = S.categories.map((c) => `<option value="${esc(c.code)}">${esc(pick(c.name_zh, c.name_en))}</option>`).join('');
    const mine = S.reports.map((r) => `<li><span class="grow">${esc(r.description.slice(0, 40))}</span>
      ${r.event ? `<span class="state">${t('reportedOk')} #${r.event.id}</span>` : r.error
        ? `<span class="overdue">${esc(r.error)}</span>` : `<span class="queued">${t('queued')}</span>`}</li>`).join('');
    body.innerHTML = `<h2>${t('report')}</h2>
      <label class="field" for="cat">${t('category')}</label>
      <select id="cat"><option value="">${t('choose')}</option>${cats}</select>
      <label class="field" for="desc">${t('desc')}</label><textarea id="desc" maxlength="2000"></textarea>
      <label class="field" for="urgency">${t('urgency')}</label>
      <select id="urgency"><option value="normal">${t('normal')}</option><option value="urgent">${t('urgent')}</option>
        <option value="emergency">${t('emergency')}</option></select>
      <label class="field">${t('photos')}</label>
      <div class="row"><label class="btn photo-pick">${t('takePhoto')}
        <input id="report-photo" type="file" accept="image/*" capture="environment" multiple></label>
        <div class="thumbs grow" id="report-thumbs">${thumbs(S.reportPhotos)}</div></div>
      <label class="field">${t('point')}</label>
      <div class="row"><button type="button" class="btn" id="here">${t('here')}</button>
        <span class="muted grow">${t('tapHint')}</span></div>
      <div class="point" id="point"></div>
      <div class="actions"><button type="button" class="btn primary big" id="submit">${t('submit')}</button></div>
      <div id="report-msg"></div>
      ${S.reports.length ? `<h3>${t('myReports')}</h3><ul class="list" data-testid="reports">${mine}</ul>` : ''}`;
    renderPoint();
    $('#report-photo').addEventListener('change', async (e) => {
      S.reportPhotos = S.reportPhotos.concat(await resizeAll(Array.from(e.target.files)));
      e.target.value = '';
      $('#report-thumbs').innerHTML = thumbs(S.reportPhotos);
    });
    $('#here').addEventListener('click', () => {
      startWatch();
      // No fix yet (weak signal, GPS warming up): the point is set as soon as one arrives.
      if (!S.pos) { S.wantHere = true; $('#point').textContent = t('locating'); return; }
      reportHere();
    });
    $('#submit').addEventListener('click', submitReport);
  }

  function reportHere() {
    S.wantHere = false;
    S.reportPoint = {lon: S.pos.lon, lat: S.pos.lat, acc: S.pos.acc, source: 'gps'};
    focus(S.pos.lat, S.pos.lon, 17);
    drawReportPoint();
    renderPoint();
  }

  function renderPoint() {
    const el = $('#point');
    if (!el) return;
    const p = S.reportPoint;
    el.textContent = p ? `${p.lat.toFixed(6)}, ${p.lon.toFixed(6)} · ${p.source === 'gps' ? t('gps') : t('tap')}` +
      (p.acc ? ` · ${t('accuracy')} ±${Math.round(p.acc)} m` : '') : t('noPoint');
  }

  async function submitReport() {
    const cat = $('#cat').value, desc = $('#desc').value.trim(), msg = $('#report-msg');
    msg.innerHTML = '';  // the last report's message is not this one's
    const problem = !cat ? 'needCat' : !desc ? 'needDesc' : !S.reportPoint ? 'needPoint' : null;
    if (problem) { msg.innerHTML = `<div class="msg err">${t(problem)}</div>`; return; }
    const p = S.reportPoint;
    const fields = {subclass: cat, description: desc, urgency: $('#urgency').value, lon: p.lon.toFixed(7),
      lat: p.lat.toFixed(7), position_source: p.source};
    if (p.acc) fields.accuracy_m = Math.round(p.acc);
    // Saving to IndexedDB takes a moment: a second tap must not send the same report twice.
    $('#submit').disabled = true;
    let item;
    try {
      item = await window.dvmapOutbox.add({kind: 'report', url: '/api/field/reports', fields: fields,
        photos: S.reportPhotos, meta: {description: desc}});
    } finally { const b = $('#submit'); if (b) b.disabled = false; }
    S.reports.unshift({client_key: item.client_key, description: desc, event: null});
    S.reportPhotos = [];
    S.reportPoint = null;
    drawReportPoint();
    renderReport();
    $('#report-msg').innerHTML = `<div class="msg wait" data-testid="report-message">${t('queued')} · ${t('waitSend')}</div>`;
  }

  // -- patrol ----------------------------------------------------------------------------------
  const PATROL_MIN_S = 5, PATROL_MIN_M = 5, BATCH_S = 30, BATCH_N = 50;
  function savePatrol() { localStorage.setItem('dvmap-patrol', JSON.stringify(S.patrol)); }

  async function startPatrol() {
    startWatch();
    const key = window.dvmapOutbox.uuid();
    const started = new Date().toISOString();
    S.patrol = {key: key, owner: localStorage.getItem('dvmap-owner'), started_at: started, distance_m: 0, count: 0, last: null, buffer: [], track: [], lastBatch: Date.now(),
      checkins: []};
    savePatrol();
    await window.dvmapOutbox.add({kind: 'patrol-start', url: '/api/field/patrols', json: true,
      fields: {patrol_key: key, started_at: started}, meta: {patrol_key: key}});
    if (S.pos) patrolPoint(S.pos, true);
    renderPatrol();
    drawTrack();
  }

  function patrolPoint(pos, force) {
    const P = S.patrol;
    if (!P) return;
    const last = P.last;
    if (!force && last && ((pos.t - last.t) / 1000 < PATROL_MIN_S || metres(last, pos) < PATROL_MIN_M)) return;
    if (last) P.distance_m += metres(last, pos);
    P.last = {lon: pos.lon, lat: pos.lat, t: pos.t};
    P.count += 1;
    P.buffer.push({t: new Date(pos.t).toISOString(), lon: Number(pos.lon.toFixed(7)), lat: Number(pos.lat.toFixed(7)),
      accuracy_m: Math.round(pos.acc || 0)});
    P.track.push([pos.lat, pos.lon]);
    if (P.track.length > 5000) P.track = P.track.slice(-5000);
    savePatrol();
    if (P.buffer.length >= BATCH_N) sendPatrolBatch();
    drawTrack();
    if (S.tab === 'patrol') focus(pos.lat, pos.lon, 16);  // the map walks with me while patrolling
  }

  async function sendPatrolBatch() {
    const P = S.patrol;
    if (!P || !P.buffer.length) return;
    const points = P.buffer;
    P.buffer = [];
    P.lastBatch = Date.now();
    savePatrol();
    await window.dvmapOutbox.add({kind: 'patrol-points', url: `/api/field/patrols/${P.key}/points`, json: true,
      fields: {points: points}, meta: {patrol_key: P.key, n: points.length}});
  }

  async function endPatrol() {
    const P = S.patrol;
    if (!P) return;
    await sendPatrolBatch();
    await window.dvmapOutbox.add({kind: 'patrol-end', url: `/api/field/patrols/${P.key}/end`, json: true,
      fields: {ended_at: new Date().toISOString()}, meta: {patrol_key: P.key, distance_m: P.distance_m}});
    S.lastPatrol = {key: P.key, distance_m: P.distance_m, confirmed: null};
    S.lastTrack = P.track;
    S.patrol = null;
    savePatrol();
    renderPatrol();
  }

  async function checkin(cp) {
    const P = S.patrol;
    if (!P || !S.pos) return;
    await window.dvmapOutbox.add({kind: 'checkin', url: `/api/field/patrols/${P.key}/checkins`, json: true,
      fields: {checkpoint_id: cp.id, t: new Date().toISOString(), lon: S.pos.lon, lat: S.pos.lat,
        accuracy_m: Math.round(S.pos.acc || 0)}, meta: {patrol_key: P.key, name: cp.name}});
    P.checkins.push(cp.id);
    savePatrol();
    renderPatrol();
  }

  setInterval(() => {
    if (S.patrol && S.patrol.buffer.length && Date.now() - S.patrol.lastBatch >= BATCH_S * 1000) sendPatrolBatch();
    if (S.patrol && S.tab === 'patrol') renderPatrolStats();
  }, 1000);

  async function loadPatrolData() {
    try {
      S.checkpoints = await getJSON('/api/field/checkpoints');
    } catch (e) { /* offline without a cached copy: no check-in list */ }
    try {
      S.weekPatrols = await getJSON(`/api/field/patrols?week=${isoWeek(new Date())}`);
      if (S.weekPatrols && S.weekPatrols.patrols) S.weekPatrols = S.weekPatrols.patrols;
    } catch (e) { S.weekPatrols = S.weekPatrols || []; }
    try {
      S.coverage = (await getJSON(`/api/field/coverage?week=${isoWeek(new Date())}`)).grids || [];
    } catch (e) { S.coverage = S.coverage || []; }
    drawCheckpoints();
    if (S.tab === 'patrol') renderPatrol();
  }

  function renderPatrolStats() {
    const el = $('#patrol-stats');
    if (!el) return;
    const P = S.patrol;
    const dur = P ? (Date.now() - Date.parse(P.started_at)) / 1000 : 0;
    el.innerHTML = `<div><b data-testid="patrol-distance">${fmtDist(P ? P.distance_m : 0)}</b><span>${t('distance')}</span></div>
      <div><b>${fmtDur(dur)}</b><span>${t('duration')}</span></div><div><b>${P ? P.count : 0}</b><span>${t('points')}</span></div>`;
  }

  function renderPatrol() {
    const P = S.patrol;
    const cps = (S.checkpoints && S.checkpoints.features) || [];
    const cpRows = cps.map((f) => {
      const [lon, lat] = f.geometry.coordinates;
      const d = S.pos ? metres(S.pos, {lon: lon, lat: lat}) : null;
      const near = d !== null && d <= (f.properties.radius_m || 50) + Math.min(S.pos.acc || 0, 50);
      const done = P && P.checkins.includes(f.properties.id);
      return `<li><span class="grow">${esc(f.properties.name)} <span class="muted">${fmtDist(d)}</span></span>
        ${done ? `<span class="state">${t('checkedIn')}</span>` : `<button type="button" class="btn" data-cp="${f.properties.id}"
        ${P && near ? '' : 'disabled'}>${t('checkin')}</button>`}</li>`;
    }).join('');
    const week = (S.weekPatrols || []).map((w) => `<li><span class="grow">${esc(w.started_local)}
      ${w.active ? `<span class="queued">${t('active')}</span>` : ''}</span>
      <b>${fmtDist(w.distance_m)}</b><span class="muted">${fmtDur(w.duration_s || 0)}</span></li>`).join('');
    const last = S.lastPatrol;
    const lastMsg = last ? (last.confirmed
      ? `<div class="msg ok" data-testid="patrol-message">${t('patrolDone')} · ${t('distance')} <b data-testid="patrol-km">${fmtDist(last.confirmed.distance_m)}</b> · ${fmtDur(last.confirmed.duration_s || 0)}</div>`
      : `<div class="msg wait" data-testid="patrol-message">${t('queued')} · ${t('distance')} ${fmtDist(last.distance_m)}</div>`) : '';
    body.innerHTML = `<h2>${t('patrol')} ${P ? `<span class="queued">${t('active')}</span>` : ''}</h2>
      <div class="stats" id="patrol-stats"></div>
      <button type="button" class="btn big ${P ? 'danger' : 'primary'}" id="patrol-btn">${P ? t('endPatrol') : t('startPatrol')}</button>
      ${lastMsg}
      <h3>${t('checkpoints')}</h3>${cps.length ? `<ul class="list">${cpRows}</ul>${P ? '' : `<p class="muted">${t('needPatrol')}</p>`}` : '<p class="muted">—</p>'}
      ${(S.coverage || []).length ? `<h3>${t('coverage')}</h3><ul class="list" data-testid="coverage">${S.coverage.map((c) =>
        `<li><span class="grow">${esc(c.name || c.code)} ${c.flagged ? `<span class="overdue">${t('lowCover')}</span>` : ''}</span><b data-grid="${esc(c.code)}">${Math.round((c.coverage || 0) * 100)}%</b>
        <span class="muted">${Number(c.km || 0).toFixed(2)} km · ${c.patrols || 0}${t('times')}</span></li>`).join('')}</ul>` : ''}
      <h3>${t('weekPatrols')}</h3>${week ? `<ul class="list" data-testid="week-patrols">${week}</ul>` : `<p class="muted">${t('noPatrols')}</p>`}`;
    renderPatrolStats();
    $('#patrol-btn').addEventListener('click', () => (S.patrol ? endPatrol() : startPatrol()));
    body.querySelectorAll('[data-cp]').forEach((b) => b.addEventListener('click', () => {
      const f = cps.find((x) => String(x.properties.id) === b.dataset.cp);
      if (f) checkin(f.properties);
    }));
  }

  // -- me --------------------------------------------------------------------------------------
  const KIND = {report: 'kindReport', action: 'kindAction', 'patrol-start': 'kindPatrol', 'patrol-points': 'kindPatrol',
    'patrol-end': 'kindPatrol', checkin: 'kindCheckin'};
  function renderMe() {
    const u = (S.me && S.me.user) || {};
    const grids = S.me && S.me.grids ? S.me.grids.features.map((f) => esc(f.properties.name || f.properties.code)).join('、') : '';
    const items = S.outbox.items.slice().sort((a, b) => a.seq - b.seq).map((i) => {
      const what = i.kind === 'report' ? i.meta.description : i.kind === 'action' ? `#${i.meta.event_id} ${i.meta.label}`
        : i.kind === 'patrol-points' ? `${i.meta.n} ${t('points')}` : i.kind === 'checkin' ? i.meta.name : i.kind;
      const bad = i.status === 'conflict' || i.status === 'failed';
      return `<li data-status="${i.status}"><span class="grow"><b>${t(KIND[i.kind] || i.kind)}</b> ${esc(what || '')}
        <span class="muted">${esc(new Date(i.created_at).toLocaleTimeString())}</span>
        ${bad ? `<div class="msg err">${i.status === 'conflict' ? t('conflict') + ': ' : ''}${esc(i.message ? pick(i.message.zh, i.message.en) : '')}</div>` : ''}</span>
        ${bad ? `<button type="button" class="btn" data-retry="${i.seq}">${t('retry')}</button>
          <button type="button" class="btn danger" data-discard="${i.seq}">${t('discard')}</button>`
        : `<span class="queued">${t('queued')}</span>`}</li>`;
    }).join('');
    const role = {grid_worker: ['网格员', 'Grid worker'], grid_manager: ['网格管理员', 'Grid manager']}[u.role];
    body.innerHTML = `<h2>${esc(u.display_name || u.username || '')} <span class="muted">${esc(role ? pick(role[0], role[1]) : u.role || '')}</span></h2>
      ${grids ? `<p class="muted">${t('grids')}: ${grids}</p>` : ''}
      <h3>${t('pending')} <span data-testid="pending-count">${S.outbox.pending}</span></h3>
      ${items ? `<ul class="list" data-testid="outbox">${items}</ul>
        ${S.outbox.pending ? `<div class="actions"><button type="button" class="btn" id="send-now">${t('sendNow')}</button></div>` : ''}`
        : `<p class="muted">${t('nothingPending')}</p>`}
      <div class="actions"><button type="button" class="btn" id="lang">${t('language')}</button>
        <a class="btn" href="/" style="display:inline-flex;align-items:center;justify-content:center;text-decoration:none">${t('desktop')}</a>
        <button type="button" class="btn danger" id="signout">${t('signOut')}</button></div>`;
    body.querySelectorAll('[data-retry]').forEach((b) => b.addEventListener('click', () => window.dvmapOutbox.retry(Number(b.dataset.retry))));
    body.querySelectorAll('[data-discard]').forEach((b) => b.addEventListener('click', () => window.dvmapOutbox.remove(Number(b.dataset.discard))));
    const now = $('#send-now');
    if (now) now.addEventListener('click', () => window.dvmapOutbox.now());
    $('#lang').addEventListener('click', () => {
      lang = lang === 'en' ? 'zh' : 'en';
      localStorage.setItem('dvmap-lang', lang);
      renderChrome();
      render();
    });
    $('#signout').addEventListener('click', async () => {
      if (S.outbox.pending && !window.confirm(t('signOutPending'))) return;
      if (navigator.serviceWorker && navigator.serviceWorker.controller) navigator.serviceWorker.controller.postMessage('clear-data');
      $('#logout-form').submit();
    });
  }

  // -- outbox events ---------------------------------------------------------------------------
  function onOutbox(state) {
    S.outbox = state;
    S.authError = state.authError;
    const sent = state.sent;
    if (sent) {
      if (sent.kind === 'report') {
        const r = S.reports.find((x) => x.client_key === sent.client_key);
        if (r) r.event = (sent.result && sent.result.event) || {id: '?'};
        if (S.tab === 'report') {
          renderReport();
          const ev = sent.result && sent.result.event;
          $('#report-msg').innerHTML = `<div class="msg ok" data-testid="report-message">${t('reportedOk')}
            ${ev ? `#${ev.id} · ${esc(ev.village_name || '')} ${esc(ev.grid_code || '')}` : ''}</div>`;
        }
        refreshTasks();
      } else if (sent.kind === 'action') {
        if (S.eventId === sent.meta.event_id) {
          S.eventMessage = {cls: 'ok', text: `${t('sentOk')}: ${sent.meta.label}`};
          openEvent(sent.meta.event_id, true);
        }
        refreshTasks();
      } else if (sent.kind === 'patrol-end') {
        if (S.lastPatrol && S.lastPatrol.key === sent.meta.patrol_key) S.lastPatrol.confirmed = sent.result || {};
        loadPatrolData();
      }
    }
    // A conflict or failure on the open event is shown on it.
    if (S.tab === 'tasks' && S.eventId) {
      const bad = state.items.find((i) => i.kind === 'action' && i.meta.event_id === S.eventId && (i.status === 'conflict' || i.status === 'failed'));
      if (bad) S.eventMessage = {cls: 'err', text: pick(bad.message && bad.message.zh, bad.message && bad.message.en)};
      if (!sent || sent.kind !== 'action') renderEvent();
    } else if (S.tab === 'me') {
      renderMe();
    }
    renderChrome();
  }

  // Each task's details (and photos) fetched once through the service worker, so they can be
  // read where there is no signal; a handful of small JSON answers.
  const warmed = new Set();
  async function warmCache() {
    if (!navigator.onLine) return;
    const urls = ['/api/field/me', '/api/field/categories', '/api/field/checkpoints',
      `/api/field/patrols?week=${isoWeek(new Date())}`, `/api/field/coverage?week=${isoWeek(new Date())}`];
    await Promise.all(urls.map((u) => fetch(u, {credentials: 'same-origin'}).catch(() => null)));
    await refreshTasks();
    for (const task of S.tasks.slice(0, 50)) {
      if (warmed.has(task.id)) continue;
      warmed.add(task.id);
      try {
        const detail = await (await fetch(`/api/field/events/${task.id}`, {credentials: 'same-origin'})).json();
        (detail.photos || []).forEach((p) => fetch(p.url, {credentials: 'same-origin'}).catch(() => null));
      } catch (e) { warmed.delete(task.id); }
    }
    document.body.dataset.warm = '1';
  }

  // -- start -----------------------------------------------------------------------------------
  async function start() {
    renderChrome();
    selectTab('tasks');
    try {
      S.me = await getJSON('/api/field/me');
      localStorage.setItem('dvmap-owner', String(S.me.user.id));
      if (S.patrol && S.patrol.owner && S.patrol.owner !== String(S.me.user.id)) {
        S.patrol = null;  // someone else's patrol on a shared phone is not mine to continue
        savePatrol();
      }
      drawGrids();
      const b = S.me.bbox;
      if (b && b.length === 4) map.fitBounds([[b[1], b[0]], [b[3], b[2]]], {padding: [20, 20]});
    } catch (e) { /* offline without a cached copy: the map stays on the county */ }
    window.dvmapOutbox.setOwner(localStorage.getItem('dvmap-owner'));
    window.dvmapOutbox.subscribe(onOutbox);
    startWatch();
    getJSON('/api/field/categories').then((c) => { S.categories = c.categories || c; if (S.tab === 'report') renderReport(); })
      .catch(() => {});
    drawTrack();
    if ('serviceWorker' in navigator) {
      // Answers fetched before the worker took control are not in its cache: fetch them again then.
      navigator.serviceWorker.addEventListener('controllerchange', () => warmCache());
      navigator.serviceWorker.register('/sw.js', {scope: '/field'}).catch((e) => console.warn('service worker', e));
      // Later, not competing with the first screen on a slow link.
      if (navigator.serviceWorker.controller) setTimeout(warmCache, 5000);
    }
    document.body.dataset.ready = '1';
  }
  start();
})();
