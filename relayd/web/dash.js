// SPDX-License-Identifier: MIT
// dash.js: keeps the dashboard's page current without reloading it.  Every
// 2 s it fetches the page's JSON twin (/api/...) and rebuilds the tables
// the server drew, with textContent and DOM nodes only: nothing from a
// message ever becomes markup.  Without it the page is the same, but still.
'use strict';
(function () {
	var body = document.body, page = body.getAttribute('data-page');
	var queue = body.getAttribute('data-queue');
	var meta = document.querySelector('meta[name="csrf-token"]');
	var csrf = meta ? meta.getAttribute('content') : '';
	var EVERY = 2000, SVG = 'http://www.w3.org/2000/svg';
	var sort = 'name', filter = '', last = null, actions = false;

	function age(s) {
		if (s === null || s === undefined) return '-';
		var sign = s < 0 ? '-' : '';
		s = Math.abs(s);
		if (s < 120) return sign + Math.floor(s) + 's';
		if (s < 7200) return sign + Math.floor(s / 60) + 'm';
		if (s < 172800) return sign + Math.floor(s / 3600) + 'h';
		return sign + Math.floor(s / 86400) + 'd';
	}

	// a node: tag, {attribute: value}, text or child nodes
	function el(tag, attrs, kids) {
		var n = document.createElement(tag);
		for (var k in attrs || {}) if (attrs[k] !== undefined && attrs[k] !== null) n.setAttribute(k, attrs[k]);
		if (kids === undefined || kids === null) return n;
		if (!Array.isArray(kids)) kids = [kids];
		kids.forEach(function (c) {
			if (c === null || c === undefined) return;
			n.appendChild(typeof c === 'object' ? c : document.createTextNode(String(c)));
		});
		return n;
	}

	function num(k, v, cls) { return el('td', {'class': 'num' + (cls ? ' ' + cls : ''), 'data-k': k}, v); }

	function replace(tbody, rows) {
		while (tbody.firstChild) tbody.removeChild(tbody.firstChild);
		rows.forEach(function (r) { tbody.appendChild(r); });
	}

	function form(q, what, label, ids, all) {
		var f = el('form', {'class': 'act', method: 'post', action: '/q/' + encodeURIComponent(q) + '/' + what});
		var c = el('input', {type: 'hidden', name: 'csrf'});
		c.value = csrf;
		f.appendChild(c);
		(ids || []).forEach(function (id) {
			var i = el('input', {type: 'hidden', name: 'id'});
			i.value = id;
			f.appendChild(i);
		});
		if (all) {
			var a = el('input', {type: 'hidden', name: 'all'});
			a.value = '1';
			f.appendChild(a);
		}
		f.appendChild(el('button', {type: 'submit', 'data-act': all ? 'replay-all' : what}, label));
		return f;
	}

	function stamp(j) {
		var t = document.getElementById('updated');
		if (t) t.textContent = j.updated;
	}

	// ---- the overview ----

	function sorted(qs) {
		var v = qs.slice();
		if (sort === 'dead') v.sort(function (a, b) { return b.dead - a.dead || (a.queue < b.queue ? -1 : 1); });
		else if (sort === 'age') v.sort(function (a, b) {
			var x = a.oldest === null ? Infinity : a.oldest, y = b.oldest === null ? Infinity : b.oldest;
			return x < y ? -1 : x > y ? 1 : (a.queue < b.queue ? -1 : 1);
		});
		return v;
	}

	function queueRows(j) {
		var tb = document.querySelector('#queues tbody');
		if (!tb) return;
		var rows = sorted(j.queues).filter(function (q) { return !filter || q.queue.indexOf(filter) >= 0; })
			.map(function (q) {
				return el('tr', {'data-queue': q.queue}, [
					el('td', null, el('a', {href: '/q/' + encodeURIComponent(q.queue)}, q.queue)),
					num('ready', q.ready), num('delayed', q.delayed), num('in_flight', q.in_flight),
					num('dead', q.dead, q.dead ? 'bad' : ''), num('oldest_age', age(q.oldest_age)),
					num('bytes', q.bytes),
					el('td', {'data-k': 'state'}, q.paused ? el('span', {'class': 'badge'}, 'paused') : null)
				]);
			});
		replace(tb, rows);
		var n = document.getElementById('nqueues');
		if (n) n.textContent = j.queues.length;
	}

	function chart(r) {
		var svg = document.getElementById('chart');
		if (!svg) return;
		while (svg.firstChild) svg.removeChild(svg.firstChild);
		var W = 720, H = 140, pad = 14, names = ['sent', 'received', 'handled', 'forwarded', 'failed'];
		// the last hour, or since the daemon started (5 minutes at least)
		var now = Date.now() / 1000, max = 1;
		var span = r.from.length ? Math.min(3600, Math.max(300, now - r.from[0])) : 3600;
		var x0 = document.getElementById('chart-x0');
		if (x0) x0.textContent = age(span) + ' ago';
		names.forEach(function (k) { r.series[k].forEach(function (v) { if (v > max) max = v; }); });
		var line = document.createElementNS(SVG, 'line');
		line.setAttribute('class', 'axis');
		line.setAttribute('x1', 0); line.setAttribute('x2', W);
		line.setAttribute('y1', H - pad); line.setAttribute('y2', H - pad);
		svg.appendChild(line);
		var top = document.getElementById('chart-max');
		if (top) top.textContent = max.toFixed(1) + '/s';
		names.forEach(function (k) {
			var pts = [];
			// a step each interval: its rate from its start to its end
			r.t.forEach(function (t, i) {
				var y = (H - pad - r.series[k][i] / max * (H - 2 * pad)).toFixed(1);
				[r.from[i], t].forEach(function (at) {
					var x = W - (now - at) / span * W;
					pts.push(Math.max(0, Math.min(W, x)).toFixed(1) + ',' + y);
				});
			});
			if (!pts.length) return;
			var p = document.createElementNS(SVG, 'polyline');
			p.setAttribute('class', 'l-' + k);
			p.setAttribute('points', pts.join(' '));
			svg.appendChild(p);
		});
	}

	function overview(j) {
		queueRows(j);
		var rates = document.getElementById('rates');
		if (rates) ['sent', 'received', 'handled', 'forwarded', 'failed'].forEach(function (k) {
			var b = rates.querySelector('b[data-k="' + k + '"]');
			if (b) b.textContent = j.rates.now[k].toFixed(1);
		});
		chart(j.rates);
		var ct = document.querySelector('#consumers tbody');
		if (ct) replace(ct, j.consumers.map(function (c) {
			return el('tr', null, [el('td', null, c.queue), el('td', null, el('code', null, c.command)),
				num('concurrency', c.concurrency), num('running', c.running),
				el('td', {'data-k': 'state'}, c.state)]);
		}));
		var ft = document.querySelector('#forwards tbody');
		if (ft) replace(ft, j.forwards.map(function (f) {
			return el('tr', null, [el('td', null, f.queue), el('td', null, [f.peer, ' ', el('small', null, f.to)]),
				el('td', {'data-k': 'state'}, f.state), num('in_flight', f.in_flight),
				num('failures_in_a_row', f.failures_in_a_row),
				el('td', {'data-k': 'last_error'}, f.last_error || '')]);
		}));
	}

	// ---- a queue ----

	function entryRows(q, list, dead) {
		return list.map(function (m) {
			var why = dead ? m.dead_reason : m.last_failure;
			var cells = [
				el('td', null, el('a', {'class': 'id', href: '/q/' + encodeURIComponent(q) + '/m/' + m.id}, m.id)),
				el('td', {'data-k': 'state'}, m.state), num('age', age(m.age)), num('attempts', m.attempts),
				el('td', {'data-k': 'key'}, m.key),
				el('td', {'data-k': 'line'}, [why ? el('span', {'class': 'why'}, why) : null, why ? ' ' : null, m.first_line])
			];
			if (actions) {
				var td = el('td', {'class': 'acts'});
				if (dead) td.appendChild(form(q, 'replay', 'replay', [m.id]));
				if (m.state !== 'claimed') td.appendChild(form(q, 'delete', 'delete', [m.id]));
				cells.push(td);
			}
			return el('tr', {'data-id': m.id}, cells);
		});
	}

	function queuePage(j) {
		var q = j.queue, row = document.querySelector('#counts tbody tr');
		if (row) ['ready', 'delayed', 'in_flight', 'dead', 'kept', 'bytes'].forEach(function (k) {
			var c = row.querySelector('[data-k="' + k + '"]');
			if (c) c.textContent = q[k];
		});
		var o = row && row.querySelector('[data-k="oldest_age"]');
		if (o) o.textContent = age(q.oldest_age);
		var p = document.getElementById('paused');
		if (p) p.hidden = !q.paused;
		var max = 1;
		j.backlog_by_age.forEach(function (b) { if (b.count > max) max = b.count; });
		document.querySelectorAll('#hist tbody tr').forEach(function (tr, i) {
			var b = j.backlog_by_age[i];
			if (!b) return;
			tr.querySelector('[data-k="count"]').textContent = b.count;
			tr.querySelector('rect').setAttribute('width', (100 * b.count / max).toFixed(1));
		});
		var rt = document.querySelector('#recent tbody');
		if (rt) replace(rt, entryRows(q.queue, j.recent, false));
		var dt = document.querySelector('#dead tbody');
		if (dt) replace(dt, entryRows(q.queue, j.dead_letters, true));
		var gt = document.querySelector('#reasons tbody');
		var now = Date.now() / 1000;
		if (gt) replace(gt, j.dead_by_reason.map(function (g) {
			var cells = [el('td', {'class': 'why', 'data-k': 'reason'}, g.reason), num('count', g.count),
				el('td', {'class': 'num'}, age(now - g.newest))];
			if (actions) cells.push(el('td', {'class': 'acts'}, form(q.queue, 'replay', 'replay these', g.ids)));
			return el('tr', null, cells);
		}));
	}

	// ---- refreshing ----

	var busy = false;
	function refresh() {
		if (busy || document.hidden) return;
		var url = page === 'overview' ? '/api/overview' :
			page === 'queue' ? '/api/q/' + encodeURIComponent(queue) : null;
		if (!url) return;
		busy = true;
		fetch(url, {credentials: 'same-origin', cache: 'no-store'}).then(function (r) {
			if (!r.ok) throw new Error('HTTP ' + r.status);
			return r.json();
		}).then(function (j) {
			last = j;
			actions = !!j.actions;
			if (page === 'overview') overview(j); else queuePage(j);
			stamp(j);
			body.removeAttribute('data-stale');
			body.setAttribute('data-refreshes', String(Number(body.getAttribute('data-refreshes') || 0) + 1));
		}).catch(function () {
			body.setAttribute('data-stale', '1');
		}).then(function () { busy = false; });
	}

	if (page === 'overview') {
		var t = document.getElementById('queues');
		sort = (t && t.getAttribute('data-sort')) || 'name';
		document.querySelectorAll('#queues th a[data-sort]').forEach(function (a) {
			a.addEventListener('click', function (ev) {
				ev.preventDefault();
				sort = a.getAttribute('data-sort');
				t.setAttribute('data-sort', sort);
				history.replaceState(null, '', sort === 'name' ? '/' : '/?sort=' + sort);
				if (last) queueRows(last);
			});
		});
		var f = document.getElementById('filter');
		if (f) {
			f.hidden = false;
			f.addEventListener('input', function () {
				filter = f.value;
				if (last) queueRows(last);
			});
		}
	}
	document.addEventListener('visibilitychange', refresh);
	refresh();
	setInterval(refresh, EVERY);
})();
