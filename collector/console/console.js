// tidemark's web console: pages over the query API (/api/v1/, docs/api.md), routed by the URL's
// fragment so every view is a link (#/service/api?range=6h). No inline script (the page's
// Content-Security-Policy forbids it), no innerHTML with data: every text from the API goes in
// through textContent. Charts are Chart.js (Debian's libjs-chart.js, built into tidemarkd).
'use strict';

const TOKEN_KEY = 'tidemark-token';
const RANGES = ['1h', '6h', '24h', '7d'];
const charts = [];        // Chart.js instances of the page shown, destroyed on navigation.
let firstChartMs = null;  // Time from navigation start to the first chart drawn.
// Uncaught errors and rejections of this page, for tests in browsers whose driver shows no
// console log (Firefox through Marionette).
const pageErrors = [];
window.addEventListener('error', (e) => pageErrors.push(String(e.message)));
window.addEventListener('unhandledrejection', (e) => pageErrors.push(String(e.reason)));

// ---- DOM helpers ----------------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else if (k === 'text') node.textContent = v;
    else node.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

const main = () => document.getElementById('main');

function setPage(title, crumbs, ...content) {
  document.title = title + ' · tidemark';
  const list = document.getElementById('crumbs');
  list.replaceChildren(...crumbs.map(([text, href]) =>
    el('li', {}, href ? el('a', {href}, text) : el('span', {'aria-current': 'page'}, text))));
  main().replaceChildren(el('h1', {}, title), ...content.filter((c) => c !== null && c !== undefined));
}

function errorBox(error) {
  return el('p', {class: 'error', role: 'alert'}, String(error.message || error));
}

function busy(on) {
  document.getElementById('busy').textContent = on ? 'loading…' : '';
}

// ---- formatting ---------------------------------------------------------------------------

function bytes(n) {
  if (n === null || n === undefined) return '–';
  const sign = n < 0 ? '-' : '';
  let v = Math.abs(n);
  for (const unit of ['B', 'KiB', 'MiB', 'GiB', 'TiB']) {
    if (v < 1024 || unit === 'TiB') return sign + (unit === 'B' ? v : v.toFixed(1)) + ' ' + unit;
    v /= 1024;
  }
  return String(n);
}

function rate(perHour) {
  if (perHour === null || perHour === undefined) return '–';
  return (perHour > 0 ? '+' : '') + bytes(Math.round(perHour)) + '/h';
}

function when(ns) {
  if (!ns) return '–';
  return new Date(ns / 1e6).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

function clock(ns, spanNs) {
  const iso = new Date(ns / 1e6).toISOString();
  if (spanNs > 2 * 86400e9) return iso.slice(5, 16).replace('T', ' ');
  return spanNs > 3600e9 ? iso.slice(11, 16) : iso.slice(11, 19);
}

// A step giving about 300 points over the range (the agents' interval bounds what they fill).
function stepFor(range) {
  const seconds = {'1h': 3600, '6h': 21600, '24h': 86400, '7d': 604800, '1d': 86400}[range];
  return seconds ? Math.max(1, Math.round(seconds / 300)) + 's' : undefined;
}

// ---- the query API ------------------------------------------------------------------------

class Unauthorized extends Error {}

async function api(path, params, method) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) if (v !== undefined && v !== '') query.set(k, v);
  const headers = {};
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = 'Bearer ' + token;
  const response = await fetch('/api/v1/' + path + '?' + query, {method: method || 'GET', headers});
  if (response.status === 401) throw new Unauthorized('this collector needs its token');
  const body = await response.json().catch(() => ({error: response.statusText}));
  if (!response.ok) {
    throw new Error(body.error + (body.parameter ? ' (parameter ' + body.parameter + ')' : ''));
  }
  return body;
}

function askForToken() {
  const form = document.getElementById('token-form');
  form.hidden = false;
  document.getElementById('token').focus();
  form.onsubmit = (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, document.getElementById('token').value.trim());
    form.hidden = true;
    route();
  };
}

// ---- charts ------------------------------------------------------------------------------

const PALETTE = ['#0b62b4', '#d1495b', '#edae49', '#00798c', '#66a182', '#8d6a9f', '#c17c74',
                 '#2e4057', '#e07a5f', '#3d405b', '#81b29a', '#f2cc8f'];

function chart(canvas, series, options) {
  const t = series.t_ns;
  // The axis spans the range asked, not the points there are (one point would collapse it).
  const span = series.to_ns - series.from_ns;
  const datasets = options.datasets.map((d, i) => {
    const data = d.values.map((v, k) => ({x: t[k] / 1e6, y: v})).filter((p) => p.y !== null);
    return {
      label: d.label, data,
      borderColor: PALETTE[i % PALETTE.length],
      backgroundColor: PALETTE[i % PALETTE.length] + (options.stacked ? 'b0' : '30'),
      fill: options.stacked ? (i === 0 ? 'origin' : '-1') : false,
      pointRadius: data.length < 30 ? 2 : 0, borderWidth: 1.5, tension: 0, spanGaps: true,
    };
  });
  const instance = new Chart(canvas, {
    type: 'line',
    data: {datasets},
    options: {
      animation: false, responsive: true, maintainAspectRatio: false, parsing: false,
      interaction: {mode: 'nearest', axis: 'x', intersect: false},
      plugins: {
        legend: {display: !options.small, position: 'bottom', labels: {boxWidth: 12}},
        tooltip: {callbacks: {
          title: (items) => items.length ? when(items[0].parsed.x * 1e6) : '',
          label: (item) => item.dataset.label + ': ' + bytes(item.parsed.y),
        }},
      },
      scales: {
        x: {type: 'linear', min: series.from_ns / 1e6, max: series.to_ns / 1e6,
            ticks: {maxTicksLimit: 8, callback: (v) => clock(v * 1e6, span)}},
        y: {stacked: !!options.stacked, beginAtZero: true, ticks: {callback: (v) => bytes(v)}},
      },
    },
  });
  charts.push(instance);
  if (firstChartMs === null) {
    firstChartMs = performance.now();
    performance.mark('tidemark-first-chart');
  }
  canvas.dataset.points = String(datasets.reduce((n, d) => n + d.data.length, 0));
  return instance;
}

function chartBox(label, small) {
  const canvas = el('canvas', {role: 'img', 'aria-label': label});
  return {box: el('div', {class: 'chart' + (small ? ' small' : '')}, canvas), canvas};
}

// ---- tables ------------------------------------------------------------------------------

// A table sortable by any column (buttons in the headers, so the keyboard reaches them).
// columns: [{title, key, num, render}]; state: {sort, desc} kept in the URL by onSort.
function sortableTable(columns, rows, state, onSort) {
  const column = columns.find((c) => c.key === state.sort) || columns[0];
  const sorted = rows.slice().sort((a, b) => {
    const x = a[column.key], y = b[column.key];
    const order = typeof x === 'number' ? x - y : String(x).localeCompare(String(y));
    return state.desc ? -order : order;
  });
  const head = el('tr', {}, columns.map((c) => el('th', {
    class: c.num ? 'num' : '', scope: 'col',
    'aria-sort': c === column ? (state.desc ? 'descending' : 'ascending') : 'none',
  }, el('button', {type: 'button', onclick: () => onSort(c.key, c === column ? !state.desc : true)},
        c.title + (c === column ? (state.desc ? ' ▾' : ' ▴') : '')))));
  const body = sorted.map((r) => el('tr', {}, columns.map((c) =>
    el('td', {class: c.num ? 'num' : ''}, c.render ? c.render(r) : r[c.key]))));
  return el('div', {class: 'scroll'}, el('table', {}, el('thead', {}, head), el('tbody', {}, body)));
}

// headers: a title ending in '#' is a numeric column (right-aligned).
function table(headers, rows) {
  const num = headers.map((h) => h.endsWith('#'));
  return el('div', {class: 'scroll'}, el('table', {},
    el('thead', {}, el('tr', {}, headers.map((h, k) =>
      el('th', {scope: 'col', class: num[k] ? 'num' : ''}, h.replace(/#$/, ''))))),
    el('tbody', {}, rows.map((r) => el('tr', {}, r.map((c, k) =>
      el('td', {class: num[k] ? 'num' : ''}, c)))))));
}

// ---- links -------------------------------------------------------------------------------

function link(page, arg, params) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) if (v !== undefined && v !== '') query.set(k, v);
  const q = query.toString();
  return '#/' + page + (arg !== undefined ? '/' + encodeURIComponent(arg) : '') + (q ? '?' + q : '');
}

function go(page, arg, params) {
  location.hash = link(page, arg, params);
}

function agentOf(ref) {
  return ref.replace(/(:[^:/]*|@-?[0-9][^/]*)$/, '');
}

// ---- series helpers ------------------------------------------------------------------------

function slopePerHour(series, key) {
  const pts = [];
  series[key].forEach((v, k) => { if (v !== null) pts.push([series.t_ns[k] / 3600e9, v]); });
  if (pts.length < 2) return null;
  const mx = pts.reduce((s, p) => s + p[0], 0) / pts.length;
  const my = pts.reduce((s, p) => s + p[1], 0) / pts.length;
  let num = 0, den = 0;
  for (const [x, y] of pts) { num += (x - mx) * (y - my); den += (x - mx) * (x - mx); }
  return den > 0 ? num / den : null;
}

function rangeParams(params) {
  if (params.get('from')) return {from: params.get('from'), to: params.get('to') || 'now'};
  const range = RANGES.includes(params.get('range')) ? params.get('range') : '24h';
  return {from: '-' + range, to: 'now', range};
}

// ---- pages -------------------------------------------------------------------------------

async function fleetPage() {
  const [services, alerts] = await Promise.all([api('services'), api('alerts')]);
  const rows = services.services.slice().sort((a, b) => b.rss_bytes - a.rss_bytes);
  const firing = alerts.firing || [];
  const firingBy = (s) => firing.filter((a) => a.service === s).length;
  const grid = el('div', {class: 'grid'});
  const growth = {};
  setPage('Fleet', [['fleet']],
    el('h2', {}, 'Firing alerts (' + firing.length + ')'),
    firing.length ? table(['alert', 'service', 'type', 'rate', 'since'], firing.map((a) => [
      el('a', {href: link('alert', a.id), class: 'firing'}, a.id), a.service, a.type || '',
      rate(a.bytes_per_hour), when(a.since_ns)])) : el('p', {class: 'muted'}, 'none'),
    el('h2', {}, 'Services (' + rows.length + ')'),
    table(['service', 'agents#', 'RSS#', 'Python heap#', 'heap growth (24 h)#', 'alerts#'],
      rows.map((s) => [el('a', {href: link('service', s.service)}, s.service), s.agents,
        bytes(s.rss_bytes), bytes(s.heap_bytes),
        growth[s.service] = el('span', {class: 'muted'}, '…'), firingBy(s.service)])),
    el('h2', {}, 'RSS and Python heap, last day'), grid);
  // One chart per service (the 12 largest): each is one series query.
  await Promise.all(rows.slice(0, 12).map(async (s) => {
    const series = await api('series', {service: s.service, from: '-1d', step: stepFor('1d'),
                                        types: 0});
    const {box, canvas} = chartBox('RSS and heap of ' + s.service, true);
    grid.append(el('div', {class: 'card'}, el('a', {href: link('service', s.service)}, s.service), box));
    chart(canvas, series, {small: true, datasets: [
      {label: 'RSS', values: series.rss_bytes}, {label: 'Python heap', values: series.heap_bytes}]});
    const g = slopePerHour(series, 'heap_bytes');
    growth[s.service].textContent = rate(g);
    growth[s.service].className = g > 0 ? 'grow' : 'shrink';
  }));
}

async function servicePage(name, params) {
  const range = rangeParams(params);
  const [series, agents, alerts] = await Promise.all([
    api('series', {service: name, from: range.from, to: range.to, step: stepFor(range.range),
                   types: 10}),
    api('agents', {service: name}), api('alerts')]);
  const stack = chartBox('Top types of ' + name + ', bytes, stacked');
  const mem = chartBox('RSS and Python heap of ' + name);
  const picker = el('div', {class: 'ranges', role: 'group', 'aria-label': 'time range'},
    RANGES.map((r) => el('a', {href: link('service', name, {range: r}),
                               'aria-current': range.range === r ? 'true' : 'false'}, r)),
    customRange(name, params));
  const firing = (alerts.firing || []).filter((a) => a.service === name);
  setPage(name, [['fleet', '#/'], [name]], picker,
    firing.length ? el('p', {}, 'Firing: ', firing.map((a) =>
      el('a', {href: link('alert', a.id), class: 'firing'}, a.id + ' '))) : null,
    el('h2', {}, 'Top types (bytes, stacked)'), stack.box,
    table(['type', 'now#', 'growth#'], series.types.map((t) => [
      t.type, bytes(lastValue(t.bytes)), el('span', {class: t.bytes_per_hour > 0 ? 'grow' : ''},
                                            rate(t.bytes_per_hour))])),
    el('h2', {}, 'RSS and Python heap'), mem.box,
    el('h2', {}, 'Agents (' + agents.agents.length + ')'),
    table(['agent', 'snapshots#', 'RSS#', 'heap#', 'last'], agents.agents.map((a) => [
      el('a', {href: link('snapshots', a.name)}, a.name), a.snapshots, bytes(a.rss_bytes),
      bytes(a.heap_bytes), when(a.last_ns)])));
  chart(stack.canvas, series, {stacked: true,
    datasets: series.types.map((t) => ({label: t.type, values: t.bytes}))});
  chart(mem.canvas, series, {datasets: [
    {label: 'RSS', values: series.rss_bytes}, {label: 'Python heap', values: series.heap_bytes}]});
}

function lastValue(values) {
  for (let k = values.length - 1; k >= 0; --k) if (values[k] !== null) return values[k];
  return null;
}

function customRange(name, params) {
  const from = el('input', {type: 'datetime-local', 'aria-label': 'from (UTC)',
                            value: (params.get('from') || '').replace(/Z$/, '')});
  const to = el('input', {type: 'datetime-local', 'aria-label': 'to (UTC)',
                          value: (params.get('to') || '').replace(/Z$/, '')});
  return el('form', {class: 'inline', onsubmit: (e) => {
    e.preventDefault();
    const utc = (v) => (v.length === 16 ? v + ':00' : v) + 'Z';
    if (from.value) go('service', name, {from: utc(from.value), to: to.value ? utc(to.value) : 'now'});
  }}, 'custom (UTC):', from, to, el('button', {type: 'submit'}, 'show'));
}

async function snapshotsPage(agent, params) {
  const list = await api('snapshots', {agent, limit: 200, kind: params.get('kind') || ''});
  setPage(list.agent, [['fleet', '#/'], [list.agent.split('/')[0], link('service', list.agent.split('/')[0])],
                       [list.agent]],
    el('p', {}, list.total + ' snapshots; ', el('a', {href: link('snapshots', agent, {kind: 'graph'})},
                                               'graph snapshots only')),
    el('div', {}, snapshotNow(list.agent)),
    table(['snapshot', 'kind', 'taken', 'objects#', 'heap#', 'RSS#'], list.snapshots.map((s) => [
      el('a', {href: link(s.kind === 'graph' ? 'graph' : 'snapshot', s.ref)}, s.ref), s.kind,
      when(s.taken_ns), s.objects, bytes(s.heap_bytes), bytes(s.rss_bytes)])));
}

function snapshotNow(agent) {
  const status = el('span', {role: 'status'});
  return el('p', {}, el('button', {type: 'button', class: 'button', onclick: async () => {
    status.textContent = ' asking…';
    try {
      await api('agents/snapshot', {agent}, 'POST');
      status.textContent = ' asked: the graph snapshot is listed here once it arrives.';
    } catch (e) {
      status.textContent = ' ' + e.message;
    }
  }}, 'Take a graph snapshot now'), status);
}

async function snapshotPage(ref, params) {
  const other = params.get('diff');
  const sort = {sort: params.get('sort') || 'bytes', desc: params.get('asc') !== '1'};
  const onSort = (key, desc) => go('snapshot', ref, {diff: other, sort: key, asc: desc ? '' : '1'});
  const [types, list] = await Promise.all([api('snapshot/types', {ref, top: 500}),
                                           api('snapshots', {agent: agentOf(ref), limit: 100})]);
  const picker = el('select', {'aria-label': 'compare with', onchange: (e) =>
    go('snapshot', ref, {diff: e.target.value, sort: sort.sort})},
    el('option', {value: ''}, '— compare with another snapshot —'),
    list.snapshots.filter((s) => s.ref !== types.ref).map((s) =>
      el('option', {value: s.ref, selected: s.ref === other}, s.ref + ' (' + when(s.taken_ns) + ')')));
  const agent = agentOf(types.ref);
  const content = [
    el('p', {}, types.kind + ' snapshot taken ' + when(types.taken_ns) + ': ' + types.objects +
       ' objects, ' + bytes(types.heap_bytes) + ' heap, ' + bytes(types.rss_bytes) + ' RSS. ',
       types.kind === 'graph' ? el('a', {href: link('graph', types.ref)}, 'Open its graph') : null),
    el('p', {}, picker)];
  if (other) {
    const diff = await api('snapshot/diff', {a: other, b: types.ref, top: 200});
    content.push(el('h2', {}, 'Growth from ' + diff.a + ' (' + Math.round(diff.seconds) + ' s)'),
      sortableTable([
        {title: 'type', key: 'type'},
        {title: 'Δ bytes', key: 'bytes_delta', num: true, render: (r) => bytes(r.bytes_delta)},
        {title: 'Δ count', key: 'count_delta', num: true},
        {title: 'bytes after', key: 'bytes_after', num: true, render: (r) => bytes(r.bytes_after)},
        {title: 'count after', key: 'count_after', num: true}],
      diff.types, {sort: sort.sort === 'bytes' ? 'bytes_delta' : sort.sort, desc: sort.desc}, onSort));
  }
  content.push(el('h2', {}, 'Types (' + types.type_count + ')'), sortableTable([
    {title: 'type', key: 'type'},
    {title: 'count', key: 'count', num: true},
    {title: 'bytes', key: 'bytes', num: true, render: (r) => bytes(r.bytes)},
    {title: 'largest', key: 'largest_bytes', num: true, render: (r) => bytes(r.largest_bytes)}],
    types.types, sort, onSort));
  setPage(types.ref, [['fleet', '#/'], [agent, link('snapshots', agent)], [types.ref]], ...content);
}

async function alertPage(id) {
  const alerts = await api('alerts', {all: 1});
  const alert = (alerts.firing || []).concat(alerts.resolved || []).find((a) => a.id === id);
  if (!alert) throw new Error('no alert ' + id + ' (it may have been forgotten: growth.alert_history)');
  const graphs = alert.graphs || [];
  setPage(alert.id, [['fleet', '#/'], [alert.service, link('service', alert.service)], [alert.id]],
    el('p', {class: alert.state === 'firing' ? 'firing' : ''}, alert.state + ': ' + alert.summary),
    table(['', ''], [
      ['kind', alert.kind], ['type', alert.type || '–'],
      ['rate', rate(alert.bytes_per_hour) + ' (' + Math.round(alert.count_per_hour || 0) + ' objects/h)'],
      ['since', when(alert.since_ns)], ['agents', (alert.agents || []).map((a) =>
        el('a', {href: link('snapshots', a)}, a + ' '))],
      ['allocated at', alert.site || el('span', {class: 'muted'}, 'no sampled site (TIDEMARK_SAMPLE_BYTES)')],
    ]),
    el('h2', {}, 'Held by'),
    (alert.holders || []).length ? table(['path', 'object', 'new objects#', 'retained#'],
      alert.holders.map((h) => [el('code', {class: 'path holder'}, h.path), h.description, h.count,
                                bytes(h.bytes)]))
      : el('p', {class: 'muted'}, 'not known yet: the investigation diffs two graph snapshots'),
    el('h2', {}, 'Graph snapshots'),
    graphs.length ? el('ul', {}, graphs.map((g, k) => el('li', {},
      el('a', {href: link('graph', g, {type: alert.holders_type || alert.type})}, g),
      k === 1 ? ' · ' : '', k === 1 ? el('a', {href: link('gdiff', g, {a: graphs[0]})}, 'what is new') : '')))
      : el('p', {class: 'muted'}, 'none yet'),
    alert.note ? el('p', {class: 'muted'}, alert.note) : null,
    (alert.evidence || []).length ? el('pre', {}, alert.evidence.join('\n')) : null);
}

async function gdiffPage(ref, params) {
  const a = params.get('a');
  const diff = await api('graph/diff', {a, b: ref, top: 20});
  setPage('New objects', [['fleet', '#/'], [agentOf(ref), link('snapshots', agentOf(ref))], ['gdiff']],
    el('p', {}, diff.new_objects + ' new objects (' + bytes(diff.new_bytes) + ') in ' +
       Math.round(diff.seconds) + ' s from ' + a + ' to ' + ref),
    table(['new type', 'count#', 'bytes#', 'held by'], diff.groups.map((g) => [
      g.type, g.count, bytes(g.bytes), el('span', {}, (g.holders || []).map((h) =>
        el('div', {}, el('code', {class: 'path'}, h.path))))])));
}

// ---- the graph page: dominator icicle, search, path to root, allocation flame graph ----------

async function graphPage(ref, params) {
  const address = params.get('address') || '';
  const [types, dominated] = await Promise.all([
    api('snapshot/types', {ref, top: 1}),
    api('graph/dominated', {ref, address, top: 30})]);
  const agent = agentOf(types.ref);
  const icicle = el('div', {class: 'icicle', role: 'group', 'aria-label': 'dominator tree'});
  const focus = el('section', {'aria-live': 'polite'});
  const search = el('input', {type: 'search', 'aria-label': 'a type or an address',
                              placeholder: 'type (app.Session) or address (0x7f…)',
                              value: params.get('type') || ''});
  setPage('Graph ' + types.ref, [['fleet', '#/'], [agent, link('snapshots', agent)],
                                  [types.ref, link('snapshot', types.ref)], ['graph']],
    types.has_values ? el('p', {class: 'values'},
      'This graph carries short string values (an investigation graph): paths may show them, marked.') : null,
    el('p', {}, types.objects + ' objects, ' + bytes(types.heap_bytes) + '. The dominator tree by ' +
       'retained size: a block holds everything only reachable through it. Click to descend.'),
    el('form', {class: 'inline', role: 'search', onsubmit: (e) => {
      e.preventDefault();
      const q = search.value.trim();
      if (/^0x[0-9a-f]+$/i.test(q)) go('graph', ref, {address: q});
      else go('graph', ref, {address, type: q});
    }}, search, el('button', {type: 'submit'}, 'find')),
    el('h2', {}, dominated.object ? 'Under ' + dominated.object.description : 'Top of the dominator tree'),
    icicle, focus, el('h2', {}, 'Allocation sites'), el('div', {id: 'sites'}));
  await drawIcicle(icicle, ref, dominated, focus);
  if (params.get('type')) await showWhy(focus, ref, {type: params.get('type')});
  else if (dominated.object) await showWhy(focus, ref, {address: dominated.object.address});
  await drawSites(document.getElementById('sites'), ref);
}

// Two rows: what the current object dominates, and under each of the largest, what it does.
async function drawIcicle(container, ref, dominated, focus) {
  const total = dominated.children.reduce((s, c) => s + c.retained, 0) || 1;
  const top = el('div', {class: 'row'});
  const below = el('div', {class: 'row'});
  container.replaceChildren(top, below);
  let x = 0;
  const blocks = dominated.children.map((c, k) => {
    const width = (100 * c.retained) / total;
    const b = block(c, x, width, k, () => select(b, c));
    x += width;
    top.append(b);
    return [b, c, x - width, width];
  });
  const select = (button, object) => {
    for (const other of container.querySelectorAll('button')) other.setAttribute('aria-pressed', 'false');
    button.setAttribute('aria-pressed', 'true');
    showWhy(focus, ref, {address: object.address}, object);
  };
  await Promise.all(blocks.filter(([, , , w]) => w > 4).slice(0, 8).map(async ([, c, left, width]) => {
    const sub = await api('graph/dominated', {ref, address: c.address, top: 10});
    const subTotal = c.retained || 1;
    let sx = left;
    sub.children.forEach((s, k) => {
      const w = (width * s.retained) / subTotal;
      const b = block(s, sx, w, k + 3, () => select(b, s));
      sx += w;
      below.append(b);
    });
  }));
}

function block(object, left, width, k, onclick) {
  const label = object.description + ' · ' + bytes(object.retained);
  return place(el('button', {
    type: 'button', 'aria-pressed': 'false', title: label, 'aria-label': label,
    'data-address': object.address, onclick,
  }, label), left, Math.max(width, 0.3), (k * 47) % 360);
}

// Positions a block of an icicle (styles set from script: the CSP allows no inline style).
function place(node, left, width, hue) {
  node.style.left = left + '%';
  node.style.width = 'calc(' + width + '% - 1px)';
  node.style.setProperty('--hue', String(hue));
  return node;
}

// What holds the object (or type) clicked: its path to a root, its referrers, and a link down.
async function showWhy(focus, ref, params, object) {
  focus.replaceChildren(el('p', {class: 'muted'}, 'finding the path to a root…'));
  try {
    const why = await api('graph/why', Object.assign({ref, paths: 3}, params));
    focus.replaceChildren(
      el('h2', {}, object ? object.description + ' (retains ' + bytes(object.retained) + ')'
                          : (params.type ? why.targets + ' × ' + params.type : params.address)),
      el('p', {}, 'Path to root:'),
      el('ol', {class: 'paths'}, why.paths.map((p) =>
        el('li', {}, el('code', {class: 'path'}, p.text), el('span', {class: 'muted'}, ' (' + p.root + ')')))),
      why.holders.length ? table(['held by', 'type', 'holds#', 'retained#'], why.holders.map((h) => [
        el('a', {href: link('graph', ref, {address: h.address})}, h.description), h.type, h.holds,
        bytes(h.retained)])) : null,
      object ? el('p', {}, el('a', {href: link('graph', ref, {address: object.address})},
                               'Descend into ' + object.description)) : null);
  } catch (e) {
    focus.replaceChildren(errorBox(e));
  }
}

// Live allocation sites as a flame graph: outermost frame at the top, width by live bytes.
async function drawSites(container, ref) {
  const sites = await api('sites', {ref, top: 200});
  if (!sites.sampled) {
    container.replaceChildren(el('p', {class: 'muted'},
      'The agent did not sample allocation sites (TIDEMARK_SAMPLE_BYTES, docs/agent.md).'));
    return;
  }
  const root = {name: 'all', bytes: 0, children: new Map()};
  for (const s of sites.sites) {
    root.bytes += s.bytes;
    let node = root;
    for (const f of s.stack.slice().reverse()) {
      const name = f.function + ' (' + f.file.split('/').pop() + ':' + f.line + ')';
      if (!node.children.has(name)) node.children.set(name, {name, bytes: 0, children: new Map()});
      node = node.children.get(name);
      node.bytes += s.bytes;
    }
  }
  const flame = el('div', {class: 'icicle flame', role: 'group', 'aria-label': 'allocation sites'});
  const rows = [];
  const frame = (node, depth, left, width) => {
    if (width < 0.2 || depth > 24) return;
    if (!rows[depth]) rows[depth] = el('div', {class: 'row'});
    const label = node.name + ' · ' + bytes(node.bytes);
    rows[depth].append(place(el('button', {type: 'button', title: label, 'aria-label': label}, label),
                             left, width, 20 + (depth * 13) % 40));
    let x = left;
    for (const child of [...node.children.values()].sort((a, b) => b.bytes - a.bytes)) {
      const w = (width * child.bytes) / (node.bytes || 1);
      frame(child, depth + 1, x, w);
      x += w;
    }
  };
  frame(root, 0, 0, 100);
  flame.append(...rows);
  container.replaceChildren(flame);
}

// ---- routing -------------------------------------------------------------------------------

const PAGES = {
  '': fleetPage, service: servicePage, snapshots: snapshotsPage, snapshot: snapshotPage,
  alert: alertPage, graph: graphPage, gdiff: gdiffPage,
};

async function route() {
  const [path, query] = location.hash.replace(/^#\/?/, '').split('?');
  const [page, ...rest] = path.split('/');
  const arg = rest.length ? decodeURIComponent(rest.join('/')) : undefined;
  const render = PAGES[page];
  while (charts.length) charts.pop().destroy();
  busy(true);
  try {
    if (!render) throw new Error('no page "' + page + '"');
    await render(arg, new URLSearchParams(query || ''));
    document.getElementById('footer').textContent = 'updated ' + new Date().toISOString();
  } catch (e) {
    if (e instanceof Unauthorized) askForToken();
    else main().replaceChildren(errorBox(e));
  } finally {
    busy(false);
    document.body.dataset.ready = String(Date.now());
  }
}

window.tidemark = {firstChartMs: () => firstChartMs, errors: () => pageErrors.slice()};
window.addEventListener('hashchange', () => { route(); main().focus(); });
document.addEventListener('DOMContentLoaded', route);
