/* 随手拍 report page: category → place (GPS or a tap) → open reports nearby (me too) → photos and text → code.
 * Plain JavaScript, no framework; every server answer is JSON; errors come in both languages. */
(function () {
  'use strict';
  var T = {
    title: ['随手拍', 'Report a problem'], switch: ['English', '中文'], what: ['遇到了什么问题?', 'What is the problem?'],
    where: ['在哪里?', 'Where is it?'], locating: ['正在获取您的位置…', 'Finding your location…'],
    located: ['已定位到您的位置(误差约 {m} 米)', 'Located (about {m} m accuracy)'],
    tapped: ['已按您点的位置', 'Using the place you tapped'],
    noGps: ['无法获取位置,请在地图上点一下问题所在的地方。', 'No location: tap the map where the problem is.'],
    tapHint: ['位置不准?在地图上点一下即可调整。', 'Not right? Tap the map to move the point.'],
    back: ['上一步', 'Back'], next: ['下一步', 'Next'],
    nearbyTitle: ['附近已有人反映了相同的问题', 'Someone nearby already reported this'],
    nearbyHint: ['如果是同一个问题,点“我也遇到了”即可,不用重复反映。', 'If it is the same problem, tap "Me too" instead of reporting again.'],
    notSame: ['不是同一个问题,继续反映', 'Not the same: continue'], meToo: ['我也遇到了', 'Me too'],
    metres: ['约 {m} 米', 'about {m} m'], followersN: ['{n} 人关注', '{n} following'],
    details: ['拍照和说明', 'Photos and details'], addPhoto: ['＋ 拍照或选照片(最多 3 张)', '+ Take or choose photos (up to 3)'],
    desc: ['说明(必填)', 'What did you see? (required)'],
    descPh: ['例如:村口路灯一到晚上就不亮', 'e.g. the street light at the village entrance is out at night'],
    phone: ['手机号(选填,只给工作人员看,用于回访和积分)', 'Phone (optional; staff only, for follow-up and points)'],
    send: ['提交', 'Send'], sending: ['正在提交…', 'Sending…'],
    tooMany: ['照片最多 3 张。', 'At most 3 photos.'], needDesc: ['请写几句说明。', 'Please describe the problem.'],
    doneTitle: ['已收到,谢谢您!', 'Received, thank you!'],
    doneText: ['网格员会到现场核实。请记下追踪码,用它查看处理进度并评价:', 'A grid worker will check it on site. Keep this tracking code to follow the case and rate the result:'],
    trackIt: ['查看处理进度', 'Follow this report'], again: ['再反映一个问题', 'Report another problem'],
    followedTitle: ['谢谢,已记下“我也遇到了”', 'Thank you, your "me too" is counted'],
    followedText: ['关注这个问题的人数:', 'People following this problem:'],
    netErr: ['网络不通,请稍后再试。', 'No connection, please try again.']
  };
  var params = new URLSearchParams(location.search);
  var lang = params.get('lang') || localStorage.getItem('dvmap_public_lang') || 'zh';
  function t(key, fmt) {
    var s = (T[key] || [key, key])[lang === 'en' ? 1 : 0];
    Object.keys(fmt || {}).forEach(function (k) { s = s.replace('{' + k + '}', fmt[k]); });
    return s;
  }
  function $(id) { return document.getElementById(id); }
  function applyLang() {
    document.documentElement.lang = lang === 'en' ? 'en' : 'zh-CN';
    document.querySelectorAll('[data-t]').forEach(function (el) { el.textContent = t(el.dataset.t); });
    document.querySelectorAll('[data-tp]').forEach(function (el) { el.placeholder = t(el.dataset.tp); });
    renderCats();
    if (state.posKey) showPos();
    if (state.nearby) renderNearby(state.nearby);
  }
  var state = {category: null, lon: null, lat: null, source: 'gps', files: [], nearby: null, posKey: 'locating'};
  var deviceKey = localStorage.getItem('dvmap_device_key');
  if (!deviceKey) {
    var a = new Uint8Array(16); crypto.getRandomValues(a);
    deviceKey = Array.from(a, function (b) { return ('0' + b.toString(16)).slice(-2); }).join('');
    localStorage.setItem('dvmap_device_key', deviceKey);
  }

  function show(id) {
    document.querySelectorAll('.step').forEach(function (s) { s.hidden = s.id !== id; });
    window.scrollTo(0, 0);
    if (id === 'step-where') setTimeout(initMap, 0);
  }
  function errorText(body) {
    if (body && body.message_zh) return lang === 'en' ? body.message_en : body.message_zh;
    return t('netErr');
  }

  var cats = [];
  function renderCats() {
    var box = $('cats'); box.innerHTML = '';
    cats.forEach(function (c) {
      var b = document.createElement('button');
      b.type = 'button'; b.textContent = lang === 'en' ? c.en : c.zh; b.dataset.key = c.key;
      if (state.category === c.key) b.className = 'on';
      b.addEventListener('click', function () { state.category = c.key; renderCats(); show('step-where'); });
      box.appendChild(b);
    });
  }
  fetch('/api/public/categories').then(function (r) { return r.json(); }).then(function (c) { cats = c; renderCats(); });

  // -- the map: village outlines only (no tiles: the machine may be offline) --
  var map = null, marker = null, outlinesAt = null, outlines = null;
  function showPos() {
    $('pos').textContent = t(state.posKey, state.posFmt) + (state.village ? ' · ' + state.village : '');
  }
  function initMap() {
    if (!map) {
      map = L.map('map', {zoomControl: true, attributionControl: false}).setView([30.54, 119.97], 15);
      map.on('click', function (e) { setPoint(e.latlng.lng, e.latlng.lat, 'tap'); });
      locate();
    }
    map.invalidateSize();
  }
  function setPoint(lon, lat, source, accuracy) {
    state.lon = lon; state.lat = lat; state.source = source; state.accuracy = accuracy;
    if (!marker) marker = L.circleMarker([lat, lon], {radius: 10, color: '#b42318', weight: 3, fillOpacity: 0.5}).addTo(map);
    marker.setLatLng([lat, lon]);
    map.setView([lat, lon], 14);
    state.posKey = source === 'tap' ? 'tapped' : 'located';
    state.posFmt = {m: Math.round(accuracy || 0)};
    showPos();
    $('where-next').disabled = false;
    loadOutlines(lon, lat);
  }
  function loadOutlines(lon, lat) {
    outlinesAt = [lon, lat]; state.village = null;
    fetch('/api/public/villages?lon=' + lon + '&lat=' + lat).then(function (r) { return r.json(); }).then(function (fc) {
      if (outlines) map.removeLayer(outlines);
      outlines = L.geoJSON(fc, {
        className: 'village-outline',
        style: function (f) {
          return {color: '#12355b', weight: 2, dashArray: '6 4',
                  fillColor: f.properties.here ? '#fef9c3' : '#dbeafe', fillOpacity: 0.5};
        },
        onEachFeature: function (f, layer) {
          layer.bindTooltip(f.properties.name, {sticky: true, className: 'vname'});
          layer.on('click', function (e) { setPoint(e.latlng.lng, e.latlng.lat, 'tap'); });
          if (f.properties.here) { state.village = f.properties.name; showPos(); }
        }}).addTo(map);
      if (marker) marker.bringToFront();
    }).catch(function () {});
  }
  function locate() {
    if (!navigator.geolocation) { state.posKey = 'noGps'; $('pos').textContent = t('noGps'); return; }
    navigator.geolocation.getCurrentPosition(function (p) {
      setPoint(p.coords.longitude, p.coords.latitude, 'gps', p.coords.accuracy);
    }, function () { state.posKey = 'noGps'; $('pos').textContent = t('noGps'); },
    {enableHighAccuracy: true, timeout: 15000, maximumAge: 60000});
  }

  // -- nearby open reports of the same kind --
  $('where-next').addEventListener('click', function () {
    var q = '?lon=' + state.lon + '&lat=' + state.lat + '&category=' + encodeURIComponent(state.category);
    fetch('/api/public/nearby' + q).then(function (r) { return r.json(); }).then(function (rows) {
      state.nearby = Array.isArray(rows) ? rows : [];
      if (state.nearby.length) { renderNearby(state.nearby); show('step-nearby'); } else { show('step-details'); }
    }).catch(function () { show('step-details'); });
  });
  function renderNearby(rows) {
    var box = $('nearby-list'); box.innerHTML = '';
    rows.forEach(function (r) {
      var card = document.createElement('div'); card.className = 'card'; card.dataset.event = r.id;
      var img = document.createElement(r.photo_url ? 'img' : 'div');
      if (r.photo_url) { img.src = r.photo_url; img.alt = ''; } else { img.className = 'noimg'; }
      var body = document.createElement('div'); body.className = 'body';
      var name = document.createElement('b'); name.textContent = lang === 'en' ? r.subclass_en : r.subclass_zh;
      var meta = document.createElement('div'); meta.className = 'meta';
      meta.textContent = (lang === 'en' ? r.status_en : r.status_zh) + ' · ' + t('metres', {m: r.metres}) + ' · ' +
        r.reported_at + ' · ' + t('followersN', {n: r.followers});
      var btn = document.createElement('button'); btn.type = 'button'; btn.className = 'metoo'; btn.textContent = t('meToo');
      btn.addEventListener('click', function () { meToo(r.id, btn); });
      body.appendChild(name); body.appendChild(meta); body.appendChild(btn);
      card.appendChild(img); card.appendChild(body); box.appendChild(card);
    });
  }
  function meToo(id, btn) {
    btn.disabled = true;
    fetch('/api/public/events/' + id + '/follow', {method: 'POST', headers: {'Content-Type': 'application/json'},
      body: JSON.stringify({device_key: deviceKey, phone: $('phone').value || null})})
      .then(function (r) { return r.json().then(function (b) { return [r.ok, b]; }); })
      .then(function (res) {
        btn.disabled = false;
        if (!res[0]) { alert(errorText(res[1])); return; }
        $('followers').textContent = res[1].followers; show('step-followed');
      }).catch(function () { btn.disabled = false; alert(t('netErr')); });
  }
  $('not-same').addEventListener('click', function () { show('step-details'); });

  // -- photos and text --
  $('photos').addEventListener('change', function (e) {
    var files = Array.from(e.target.files || []);
    if (state.files.length + files.length > 3) { showErr(t('tooMany')); files = files.slice(0, 3 - state.files.length); }
    Promise.all(files.map(function (f) { return window.dvmapPhoto.resize(f, {maxSide: 1600, quality: 0.8}); }))
      .then(function (blobs) {
        blobs.forEach(function (b) {
          state.files.push(b);
          var img = document.createElement('img'); img.src = URL.createObjectURL(b); img.alt = '';
          $('previews').appendChild(img);
        });
      });
    e.target.value = '';
  });
  $('desc').addEventListener('input', function () { $('count').textContent = $('desc').value.length; });
  function showErr(msg) { $('err').textContent = msg; $('err').hidden = !msg; }
  var clientKey = null;
  $('send').addEventListener('click', function () {
    var desc = $('desc').value.trim();
    if (!desc) { showErr(t('needDesc')); return; }
    showErr('');
    clientKey = clientKey || (deviceKey + '-' + Date.now());
    var fd = new FormData();
    fd.append('category', state.category); fd.append('description', desc);
    fd.append('lon', state.lon); fd.append('lat', state.lat); fd.append('position_source', state.source);
    if (state.accuracy) fd.append('accuracy', state.accuracy);
    fd.append('phone', $('phone').value); fd.append('website', $('website').value); fd.append('client_key', clientKey);
    state.files.forEach(function (b, i) { fd.append('photos', b, 'photo' + (i + 1) + '.jpg'); });
    var btn = $('send'); btn.disabled = true; btn.textContent = t('sending');
    fetch('/api/public/reports', {method: 'POST', body: fd})
      .then(function (r) { return r.json().then(function (b) { return [r.ok, b]; }); })
      .then(function (res) {
        btn.disabled = false; btn.textContent = t('send');
        if (!res[0]) { showErr(errorText(res[1])); return; }
        $('code').textContent = res[1].tracking_code;
        $('track-link').href = '/track/' + res[1].tracking_code + (lang === 'en' ? '?lang=en' : '');
        clientKey = null; show('step-done');
      }).catch(function () { btn.disabled = false; btn.textContent = t('send'); showErr(t('netErr')); });
  });
  function reset() {
    state.category = null; state.files = []; state.nearby = null; $('previews').innerHTML = ''; $('desc').value = '';
    $('count').textContent = '0'; renderCats(); show('step-what');
  }
  $('again').addEventListener('click', reset);
  $('again2').addEventListener('click', reset);
  document.querySelectorAll('[data-back]').forEach(function (b) {
    b.addEventListener('click', function () { show(b.dataset.back); });
  });
  $('lang').addEventListener('click', function () {
    lang = lang === 'en' ? 'zh' : 'en'; localStorage.setItem('dvmap_public_lang', lang); applyLang();
  });
  applyLang();
})();
