// jobrunner dashboard: small progressive enhancement. Every page works
// without it; with it, active runs update live.
(function () {
  'use strict';

  function ts(s) {
    var d = new Date(s);
    return isNaN(d) ? s : d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
  }

  function setStatus(status) {
    var holder = document.getElementById('run-status');
    if (!holder) return;
    var span = holder.querySelector('.status');
    if (!span || span.getAttribute('data-status') === status) return;
    span.className = 'status st-' + status;
    span.setAttribute('data-status', status);
    span.textContent = status;
  }

  // Run and logs pages: poll the run's status and new log lines while it
  // is active; the run page reloads once the run is final.
  var live = document.querySelector('[data-live-run]');
  if (live) {
    var id = live.getAttribute('data-live-run');
    var after = parseInt(live.getAttribute('data-after') || '0', 10) || 0;
    var append = !live.hasAttribute('data-no-append');
    var tbody = document.getElementById('log-lines');
    var poll = function () {
      fetch('/runs/' + encodeURIComponent(id) + '/live?after=' + after, { credentials: 'same-origin', headers: { 'Accept': 'application/json' } })
        .then(function (r) { if (!r.ok) { throw new Error('HTTP ' + r.status); } return r.json(); })
        .then(function (d) {
          (d.logs || []).forEach(function (l) {
            after = l.id;
            if (!append || !tbody) return;
            var tr = document.createElement('tr');
            tr.className = 'lv-' + l.level;
            tr.setAttribute('data-log-id', String(l.id));
            [ts(l.time), String(l.attempt), l.level, l.message + (l.fields ? ' ' + JSON.stringify(l.fields) : '')].forEach(function (text, i) {
              var td = document.createElement('td');
              if (i === 0) { var sm = document.createElement('small'); sm.textContent = text; td.appendChild(sm); } else { td.textContent = text; }
              tr.appendChild(td);
            });
            tbody.appendChild(tr);
            var none = document.getElementById('no-logs');
            if (none) none.remove();
          });
          setStatus(d.status);
          var p = document.getElementById('run-progress');
          if (p) { p.value = d.progress; }
          if (d.final) {
            if (live.hasAttribute('data-reload')) { window.location.reload(); }
            return;
          }
          setTimeout(poll, 1000);
        })
        .catch(function () { setTimeout(poll, 3000); });
    };
    setTimeout(poll, 500);
  }

  // Runs page: while a listed run is active, refresh the table in place.
  var list = document.querySelector('[data-refresh-list]');
  if (list && list.getAttribute('data-active') === 'true') {
    var refresh = function () {
      fetch(window.location.href, { credentials: 'same-origin' })
        .then(function (r) { if (!r.ok) { throw new Error('HTTP ' + r.status); } return r.text(); })
        .then(function (html) {
          var doc = new DOMParser().parseFromString(html, 'text/html');
          var fresh = doc.querySelector('[data-refresh-list]');
          if (fresh) { list.replaceWith(fresh); list = fresh; }
          if (list.getAttribute('data-active') === 'true') { setTimeout(refresh, 3000); }
        })
        .catch(function () { setTimeout(refresh, 6000); });
    };
    setTimeout(refresh, 3000);
  }
})();
