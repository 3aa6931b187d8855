/* The tracking page: status, public timeline, after-photos, and the reporter's 评价. */
(function () {
  'use strict';
  var T = {
    trackTitle: ['处理进度', 'Progress'], switch: ['English', '中文'], codeLabel: ['追踪码', 'Tracking code'],
    status: ['当前状态', 'Status'], afterPhotos: ['处理后的照片', 'After handling'], timeline: ['处理过程', 'What happened'],
    rateTitle: ['您对处理结果满意吗?', 'Are you satisfied with the result?'], satisfied: ['满意', 'Satisfied'],
    basic: ['基本满意', 'Basically'], not: ['不满意', 'Not satisfied'], comment: ['意见(选填)', 'Comment (optional)'],
    sendRating: ['提交评价', 'Send rating'], ratedTitle: ['您的评价', 'Your rating'],
    notFound: ['没有找到这个追踪码,请核对后再试。', 'No report with this tracking code: please check it.'],
    newReport: ['反映新问题', 'Report a new problem'], reason: ['原因:', 'Reason: '],
    mergedInto: ['您的反映与附近同一问题合并处理,进度:{s}', 'Your report was merged with the same problem nearby: {s}'],
    netErr: ['网络不通,请稍后再试。', 'No connection, please try again.']
  };
  var params = new URLSearchParams(location.search);
  var lang = params.get('lang') || localStorage.getItem('dvmap_public_lang') || 'zh';
  var code = decodeURIComponent(location.pathname.split('/').pop());
  var data = null, level = null;
  function t(key, fmt) {
    var s = (T[key] || [key, key])[lang === 'en' ? 1 : 0];
    Object.keys(fmt || {}).forEach(function (k) { s = s.replace('{' + k + '}', fmt[k]); });
    return s;
  }
  function $(id) { return document.getElementById(id); }
  function pick(o, base) { return lang === 'en' ? o[base + '_en'] : o[base + '_zh']; }
  function render() {
    document.documentElement.lang = lang === 'en' ? 'en' : 'zh-CN';
    document.querySelectorAll('[data-t]').forEach(function (el) { el.textContent = t(el.dataset.t); });
    $('code').textContent = code;
    if (!data) return;
    $('category').textContent = pick(data, 'category');
    $('status').textContent = pick(data, 'status');
    var merged = data.merged_into;
    $('merged').hidden = !merged;
    if (merged) $('merged').textContent = t('mergedInto', {s: pick(merged, 'status')});
    var after = $('after-photos'); after.innerHTML = '';
    data.after_photos.forEach(function (u) { var i = document.createElement('img'); i.src = u; i.alt = ''; after.appendChild(i); });
    $('after').hidden = !data.after_photos.length;
    var ol = $('timeline'); ol.innerHTML = '';
    data.timeline.concat(merged ? merged.timeline : []).forEach(function (s) {
      var li = document.createElement('li');
      var at = document.createElement('span'); at.className = 'at'; at.textContent = s.at;
      li.appendChild(at); li.appendChild(document.createTextNode(pick(s, 'text')));
      if (s.reason) { var r = document.createElement('span'); r.className = 'reason'; r.textContent = t('reason') + s.reason; li.appendChild(r); }
      ol.appendChild(li);
    });
    $('rate').hidden = !data.can_rate;
    $('rated').hidden = !data.rating;
    if (data.rating) {
      $('rated-text').textContent = pick(data.rating, 'label') + ' · ' + data.rating.at + (data.rating.comment ? ' · ' + data.rating.comment : '');
    }
  }
  function load() {
    fetch('/api/public/track/' + encodeURIComponent(code)).then(function (r) {
      if (!r.ok) { $('notfound').hidden = false; return null; }
      return r.json();
    }).then(function (d) { if (d) { data = d; render(); } }).catch(function () { $('notfound').hidden = false; });
  }
  document.querySelectorAll('.levels button').forEach(function (b) {
    b.addEventListener('click', function () {
      level = b.dataset.level;
      document.querySelectorAll('.levels button').forEach(function (x) { x.className = x === b ? 'on' : ''; });
      $('send-rating').disabled = false;
    });
  });
  $('send-rating').addEventListener('click', function () {
    $('send-rating').disabled = true;
    fetch('/api/public/track/' + encodeURIComponent(code) + '/rating', {method: 'POST',
      headers: {'Content-Type': 'application/json'}, body: JSON.stringify({level: level, comment: $('comment').value})})
      .then(function (r) { return r.json().then(function (b) { return [r.ok, b]; }); })
      .then(function (res) {
        if (!res[0]) { $('err').textContent = lang === 'en' ? res[1].message_en : res[1].message_zh; $('err').hidden = false;
          $('send-rating').disabled = false; return; }
        load();
      }).catch(function () { $('err').textContent = t('netErr'); $('err').hidden = false; $('send-rating').disabled = false; });
  });
  $('lang').addEventListener('click', function () {
    lang = lang === 'en' ? 'zh' : 'en'; localStorage.setItem('dvmap_public_lang', lang); render();
  });
  render(); load();
})();
