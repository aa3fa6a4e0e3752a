/* sluice docs: the static site's front-end.
 *
 * Reads window.SLUICE_DOCS (written by `sluice docs generate` into data.js next
 * to this file) and draws the sidebar, the dependency graph (own SVG layered
 * layout, no libraries) and the details panel. Works from file://: no fetch, no
 * modules, no network. Every string from the data goes into the page through
 * textContent or attribute values, never as HTML.
 */
(function () {
  'use strict';

  // ---------------------------------------------------------------- constants
  const LARGE_GRAPH = 150;      // above this many nodes only neighbourhoods are drawn
  const NODE_W = 176;
  const NODE_H = 42;
  const COL_LINE = 14;          // height of one lineage column line inside a node
  const MAX_NODE_COLS = 8;      // lineage column names listed inside one node
  const LAYER_GAP = 64;
  const READABLE_K = 0.75;      // zoom a selection is shown at, at least
  const NODE_GAP = 16;
  const DUMMY_GAP = 8;
  const DUMMY_BUDGET = 6000;    // virtual nodes for long edges in one layout
  const LIST_LIMIT = 300;       // sidebar rows shown before "show all"
  const KIND_ORDER = ['source', 'seed', 'snapshot', 'model', 'feature_view', 'other'];
  const KIND_LABEL = {
    source: 'Sources', seed: 'Seeds', snapshot: 'Snapshots', model: 'Models',
    feature_view: 'Feature views', other: 'Other'
  };
  const KIND_ONE = {
    source: 'source', seed: 'seed', snapshot: 'snapshot', model: 'model',
    feature_view: 'feature view', other: 'node'
  };

  // ------------------------------------------------------------------ helpers
  function arr(x) { return Array.isArray(x) ? x : []; }
  function str(x) { return x === null || x === undefined ? '' : String(x); }
  function obj(x) { return x && typeof x === 'object' && !Array.isArray(x) ? x : null; }
  function num(x) {
    if (x === null || x === undefined || x === '') return null;
    const n = Number(x);
    return isFinite(n) ? n : null;
  }
  function kindClass(k) { return KIND_LABEL[k] && k !== 'other' ? k : 'other'; }
  function statusClass(s) { return str(s).toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '') || 'other'; }
  function colKey(node, column) { return node + '\u0000' + column; }

  function fmtNum(x) {
    const n = num(x);
    return n === null ? '—' : n.toLocaleString('en-US');
  }
  function fmtTime(s) {
    if (!s) return '—';
    const d = new Date(s);
    if (isNaN(d.getTime())) return str(s);
    return d.toISOString().replace('T', ' ').replace(/(\.\d+)?Z$/, ' UTC');
  }
  /** 'YYYY-MM-DD HH:MM' (UTC) in a span whose title has the full time. */
  function shortTime(s) {
    if (!s) return '—';
    const d = new Date(s);
    if (isNaN(d.getTime())) return str(s);
    return h('span', { title: fmtTime(s) }, d.toISOString().slice(0, 16).replace('T', ' '));
  }
  function fmtDuration(x) {
    const s = num(x);
    if (s === null) return '—';
    if (s < 1) return Math.round(s * 1000) + ' ms';
    if (s < 60) return s.toFixed(s < 10 ? 2 : 1) + ' s';
    return fmtAge(s);
  }
  function fmtAge(x) {
    let s = num(x);
    if (s === null) return '—';
    const neg = s < 0;
    s = Math.abs(s);
    let out;
    if (s < 60) out = Math.round(s) + ' s';
    else if (s < 3600) out = Math.floor(s / 60) + ' min ' + Math.round(s % 60) + ' s';
    else if (s < 86400) out = Math.floor(s / 3600) + ' h ' + Math.round((s % 3600) / 60) + ' min';
    else out = Math.floor(s / 86400) + ' d ' + Math.round((s % 86400) / 3600) + ' h';
    return (neg ? '-' : '') + out;
  }
  function appendKids(el, kids) {
    for (const k of kids) {
      if (k === null || k === undefined || k === false) continue;
      if (Array.isArray(k)) appendKids(el, k);
      else if (k instanceof Node) el.appendChild(k);
      else el.appendChild(document.createTextNode(String(k)));
    }
  }
  function setAttrs(el, attrs) {
    if (!attrs) return;
    for (const k of Object.keys(attrs)) {
      const v = attrs[k];
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') el.setAttribute('class', v);
      else if (k === 'text') el.textContent = v;
      else if (k.slice(0, 2) === 'on' && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  /** HTML element; strings among the children become text nodes. */
  function h(tag, attrs) {
    const el = document.createElement(tag);
    setAttrs(el, attrs);
    appendKids(el, Array.prototype.slice.call(arguments, 2));
    return el;
  }
  const SVGNS = 'http://www.w3.org/2000/svg';
  function sv(tag, attrs) {
    const el = document.createElementNS(SVGNS, tag);
    setAttrs(el, attrs);
    appendKids(el, Array.prototype.slice.call(arguments, 2));
    return el;
  }
  function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); }
  function $(id) { return document.getElementById(id); }
  function truncate(s, max) { return s.length > max ? s.slice(0, Math.max(1, max - 1)) + '…' : s; }

  // ---------------------------------------------------------------- the data
  function prepare(raw) {
    const data = obj(raw) || {};
    const M = {
      missing: !obj(raw),
      project: str(data.project) || 'sluice project',
      generated_at: str(data.generated_at),
      version: str(data.sluice_version),
      nodes: [], byId: new Map(), edges: [], edgeSet: new Set(),
      colUp: new Map(), colDown: new Map()
    };
    arr(data.nodes).forEach(function (n0, i) {
      const n = obj(n0);
      if (!n) return;
      const kind = str(n.kind) || 'other';
      const id = str(n.id) || (kind + '.' + (str(n.name) || String(i)));
      if (M.byId.has(id)) return;
      const node = {
        id: id, kind: kind, kclass: kindClass(kind),
        name: str(n.name) || id, relation: str(n.relation), file: str(n.file),
        description: str(n.description), materialized: str(n.materialized),
        tags: arr(n.tags).map(str).filter(Boolean),
        raw_sql: str(n.raw_sql), compiled_sql: str(n.compiled_sql),
        columns: arr(n.columns).map(obj).filter(Boolean).map(function (c) {
          return { name: str(c.name), type: str(c.type), description: str(c.description) };
        }).filter(function (c) { return c.name !== ''; }),
        tests: arr(n.tests).map(obj).filter(Boolean),
        versions: arr(n.versions).map(obj).filter(Boolean),
        runs: arr(n.runs).map(obj).filter(Boolean),
        loads: arr(n.loads).map(obj).filter(Boolean),
        freshness: obj(n.freshness),
        feature_view: obj(n.feature_view),
        up: [], down: [], index: M.nodes.length, health: null
      };
      node.health = health(node);
      node.search = {
        name: node.name.toLowerCase(), id: id.toLowerCase(), relation: node.relation.toLowerCase(),
        cols: node.columns.map(function (c) { return c.name.toLowerCase(); }),
        desc: node.description.toLowerCase(), tags: node.tags.map(function (t) { return t.toLowerCase(); })
      };
      M.nodes.push(node);
      M.byId.set(id, node);
    });
    for (const e0 of arr(data.edges)) {
      const e = obj(e0);
      if (!e) continue;
      const from = str(e.from), to = str(e.to);
      const a = M.byId.get(from), b = M.byId.get(to);
      const key = colKey(from, to);
      if (!a || !b || from === to || M.edgeSet.has(key)) continue;
      M.edgeSet.add(key);
      M.edges.push({ from: from, to: to });
      a.down.push(to);
      b.up.push(from);
    }
    const seen = new Set();
    for (const c0 of arr(data.column_lineage)) {
      const c = obj(c0);
      if (!c) continue;
      const node = str(c.node), column = str(c.column);
      if (!node || !column) continue;
      const k = colKey(node, column);
      for (const i0 of arr(c.inputs)) {
        const i = obj(i0);
        if (!i) continue;
        const inode = str(i.node), icol = str(i.column);
        if (!inode || !icol) continue;
        const ik = colKey(inode, icol);
        const pair = k + '\u0001' + ik;
        if (ik === k || seen.has(pair)) continue;
        seen.add(pair);
        const kind = str(i.kind) || 'copied';
        if (!M.colUp.has(k)) M.colUp.set(k, []);
        M.colUp.get(k).push({ node: inode, column: icol, kind: kind });
        if (!M.colDown.has(ik)) M.colDown.set(ik, []);
        M.colDown.get(ik).push({ node: node, column: column, kind: kind });
      }
    }
    return M;
  }

  /** Worst status of a node's tests and freshness: 'fail' | 'warn' | null. */
  function health(node) {
    let worst = null;
    for (const t of node.tests) {
      const s = statusClass(t.status);
      if (s === 'fail' || s === 'error') return 'fail';
      if (s === 'warn') worst = 'warn';
    }
    const f = node.freshness;
    if (f) {
      const s = statusClass(f.status);
      if (s === 'error' || s === 'runtime-error') return 'fail';
      if (s === 'warn') worst = 'warn';
    }
    if (node.runs.length && statusClass(node.runs[0].status) === 'error') return 'fail';
    return worst;
  }

  /** Transitive lineage of one column in one direction ('up' | 'down').
   *  cols: Map key -> {node, column, kind, depth} (kind of the edge nearest to
   *  that column on its shortest path); edges: [fromKey, toKey] data-direction. */
  function columnClosure(M, nodeId, column, dir) {
    const map = dir === 'up' ? M.colUp : M.colDown;
    const start = colKey(nodeId, column);
    const cols = new Map();
    const edges = [];
    const visited = new Set([start]);
    let frontier = [start];
    let depth = 0;
    while (frontier.length) {
      depth++;
      const next = [];
      for (const k of frontier) {
        for (const r of (map.get(k) || [])) {
          const rk = colKey(r.node, r.column);
          edges.push(dir === 'up' ? [rk, k] : [k, rk]);
          if (visited.has(rk)) continue;
          visited.add(rk);
          cols.set(rk, { node: r.node, column: r.column, kind: r.kind, depth: depth });
          next.push(rk);
        }
      }
      frontier = next;
    }
    return { cols: cols, edges: edges };
  }

  // ------------------------------------------------------------------- layout
  /** Layered left-to-right layout: longest-path layers (sources pulled next to
   *  their first consumer), virtual nodes on long edges, barycenter ordering
   *  sweeps, then vertical placement by isotonic regression towards the
   *  neighbours. ids: drawn node ids; edges: [{from, to}]; heightOf(id). */
  function layoutGraph(ids, edges, heightOf) {
    const n = ids.length;
    const index = new Map();
    ids.forEach(function (id, i) { index.set(id, i); });
    const succ = [], pred = [];
    for (let i = 0; i < n; i++) { succ.push([]); pred.push([]); }
    const E = [];
    for (const e of edges) {
      const a = index.get(e.from), b = index.get(e.to);
      if (a === undefined || b === undefined || a === b) continue;
      succ[a].push(b);
      pred[b].push(a);
      E.push([a, b]);
    }
    // topological order; a cycle is broken at the first node left
    const indeg = pred.map(function (p) { return p.length; });
    const done = new Uint8Array(n);
    const order = [];
    const queue = [];
    for (let i = 0; i < n; i++) if (indeg[i] === 0) queue.push(i);
    let qh = 0, nextFree = 0;
    while (order.length < n) {
      if (qh >= queue.length) {
        while (done[nextFree]) nextFree++;
        queue.push(nextFree);
      }
      const v = queue[qh++];
      if (done[v]) continue;
      done[v] = 1;
      order.push(v);
      for (const w of succ[v]) if (!done[w] && --indeg[w] === 0) queue.push(w);
    }
    const pos = new Int32Array(n);
    order.forEach(function (v, i) { pos[v] = i; });
    const layer = new Int32Array(n);
    for (const v of order) {
      let l = 0;
      for (const u of pred[v]) if (pos[u] < pos[v] && layer[u] + 1 > l) l = layer[u] + 1;
      layer[v] = l;
    }
    for (let i = order.length - 1; i >= 0; i--) {
      const v = order[i];
      if (pred[v].some(function (u) { return pos[u] < pos[v]; })) continue;
      let m = Infinity;
      for (const w of succ[v]) if (pos[w] > pos[v]) m = Math.min(m, layer[w] - 1);
      if (m !== Infinity && m > layer[v]) layer[v] = m;
    }
    // virtual graph
    const vLayer = Array.from(layer);
    const vH = ids.map(heightOf);
    const vPred = ids.map(function () { return []; });
    const vSucc = ids.map(function () { return []; });
    const chains = [];
    let budget = DUMMY_BUDGET;
    for (const ab of E) {
      const a = ab[0], b = ab[1];
      const span = layer[b] - layer[a];
      const chain = [a];
      if (span === 1) {
        vSucc[a].push(b); vPred[b].push(a);
      } else if (span > 1 && budget >= span - 1) {
        budget -= span - 1;
        let prev = a;
        for (let l = layer[a] + 1; l < layer[b]; l++) {
          const d = vLayer.length;
          vLayer.push(l); vH.push(0); vPred.push([prev]); vSucc.push([]);
          vSucc[prev].push(d);
          chain.push(d);
          prev = d;
        }
        vSucc[prev].push(b); vPred[b].push(prev);
      }
      chain.push(b);
      chains.push(chain);
    }
    const V = vLayer.length;
    let L = 0;
    for (let v = 0; v < V; v++) if (vLayer[v] + 1 > L) L = vLayer[v] + 1;
    const layers = [];
    for (let l = 0; l < L; l++) layers.push([]);
    for (const v of order) layers[vLayer[v]].push(v);
    for (let d = n; d < V; d++) layers[vLayer[d]].push(d);
    // ordering: barycenter sweeps
    const vpos = new Float64Array(V);
    const key = new Float64Array(V);
    layers.forEach(function (ly) { ly.forEach(function (v, i) { vpos[v] = i; }); });
    const byKey = function (x, y) { return key[x] - key[y] || vpos[x] - vpos[y]; };
    for (let it = 0; it < 8 && L > 1; it++) {
      const down = it % 2 === 0;
      for (let li = down ? 1 : L - 2; down ? li < L : li >= 0; li += down ? 1 : -1) {
        const ly = layers[li];
        for (const v of ly) {
          const nb = down ? vPred[v] : vSucc[v];
          if (!nb.length) { key[v] = vpos[v]; continue; }
          let s = 0;
          for (const u of nb) s += vpos[u];
          key[v] = s / nb.length;
        }
        ly.sort(byKey);
        ly.forEach(function (v, i) { vpos[v] = i; });
      }
    }
    // vertical placement
    const vy = new Float64Array(V); // top
    const sep = function (a, b) { return vH[a] + (vH[a] > 0 || vH[b] > 0 ? NODE_GAP : DUMMY_GAP); };
    for (const ly of layers) {
      let y = 0;
      for (let i = 0; i < ly.length; i++) {
        vy[ly[i]] = y;
        if (i + 1 < ly.length) y += sep(ly[i], ly[i + 1]);
      }
      const total = ly.length ? y + vH[ly[ly.length - 1]] : 0;
      for (const v of ly) vy[v] -= total / 2;
    }
    const center = function (v) { return vy[v] + vH[v] / 2; };
    const place = function (ly, desired) {
      const m = ly.length;
      if (!m) return;
      const off = new Float64Array(m);
      for (let i = 1; i < m; i++) off[i] = off[i - 1] + sep(ly[i - 1], ly[i]);
      const bv = [], bw = [];
      for (let i = 0; i < m; i++) {
        bv.push(desired[i] - vH[ly[i]] / 2 - off[i]);
        bw.push(1);
        while (bv.length > 1 && bv[bv.length - 2] > bv[bv.length - 1]) {
          const v2 = bv.pop(), w2 = bw.pop();
          const v1 = bv.pop(), w1 = bw.pop();
          bv.push((v1 * w1 + v2 * w2) / (w1 + w2));
          bw.push(w1 + w2);
        }
      }
      let i = 0;
      for (let b = 0; b < bv.length; b++) {
        for (let k = 0; k < bw[b]; k++, i++) vy[ly[i]] = bv[b] + off[i];
      }
    };
    const relax = function (li, usePred, useSucc) {
      const ly = layers[li];
      const desired = ly.map(function (v) {
        let s = 0, c = 0;
        if (usePred) for (const u of vPred[v]) { s += center(u); c++; }
        if (useSucc) for (const u of vSucc[v]) { s += center(u); c++; }
        return c ? s / c : center(v);
      });
      place(ly, desired);
    };
    for (let r = 0; r < 3; r++) {
      for (let li = 1; li < L; li++) relax(li, true, false);
      for (let li = L - 2; li >= 0; li--) relax(li, false, true);
    }
    for (let li = 0; li < L; li++) relax(li, true, true);
    // coordinates
    let minY = Infinity, maxY = -Infinity;
    for (let v = 0; v < V; v++) {
      if (vy[v] < minY) minY = vy[v];
      if (vy[v] + vH[v] > maxY) maxY = vy[v] + vH[v];
    }
    if (!isFinite(minY)) { minY = 0; maxY = 0; }
    const X = function (v) { return vLayer[v] * (NODE_W + LAYER_GAP); };
    const Y = function (v) { return vy[v] - minY; };
    const boxes = new Map();
    ids.forEach(function (id, i) { boxes.set(id, { x: X(i), y: Y(i), w: NODE_W, h: vH[i] }); });
    const routes = chains.map(function (chain) {
      return { from: ids[chain[0]], to: ids[chain[chain.length - 1]], d: edgePath(chain, X, Y, vH) };
    });
    return { boxes: boxes, routes: routes, width: L * (NODE_W + LAYER_GAP) - LAYER_GAP, height: maxY - minY };
  }

  /** SVG path of one edge through its virtual nodes: bezier between layers,
   *  straight across a virtual node's column. */
  function edgePath(chain, X, Y, vH) {
    const a = chain[0], b = chain[chain.length - 1];
    const sx = X(a) + NODE_W, sy = Y(a) + vH[a] / 2;
    const ex = X(b) - 1, ey = Y(b) + vH[b] / 2;
    const f = function (x) { return Math.round(x * 10) / 10; };
    if (ex <= sx) { // back edge (cycle) or same layer: loop around
      const bend = 60;
      return 'M' + f(sx) + ',' + f(sy) + ' C' + f(sx + bend) + ',' + f(sy) + ' ' + f(ex - bend) + ',' + f(ey) + ' ' + f(ex) + ',' + f(ey);
    }
    let d = 'M' + f(sx) + ',' + f(sy);
    let px = sx, py = sy;
    const curve = function (qx, qy) {
      const dx = (qx - px) / 2;
      d += ' C' + f(px + dx) + ',' + f(py) + ' ' + f(qx - dx) + ',' + f(qy) + ' ' + f(qx) + ',' + f(qy);
      px = qx; py = qy;
    };
    for (let j = 1; j < chain.length - 1; j++) {
      const v = chain[j];
      curve(X(v), Y(v));
      px = X(v) + NODE_W;
      d += ' L' + f(px) + ',' + f(py);
    }
    curve(ex, ey);
    return d;
  }

  // -------------------------------------------------------------------- state
  let M = null;
  const state = { selected: null, column: null, depth: 2, query: '', listAll: false, active: 0, keyboard: false };
  const view = { k: 1, tx: 0, ty: 0, fitted: false, layout: null, drawnKey: '', linKey: '' };
  let lineageCache = { key: null, value: null };
  const perf = { layoutMs: 0, renderMs: 0, searchMs: 0 };

  function isLarge() { return M.nodes.length > LARGE_GRAPH; }

  function lineage() {
    if (!state.selected || !state.column) return null;
    const key = colKey(state.selected, state.column);
    if (lineageCache.key !== key) {
      lineageCache = {
        key: key,
        value: {
          up: columnClosure(M, state.selected, state.column, 'up'),
          down: columnClosure(M, state.selected, state.column, 'down')
        }
      };
    }
    return lineageCache.value;
  }

  function walk(id, dir, depth, into) {
    let frontier = [id];
    const seen = new Set([id]);
    for (let d = 0; d < depth && frontier.length; d++) {
      const next = [];
      for (const x of frontier) {
        for (const y of M.byId.get(x)[dir]) {
          if (seen.has(y)) continue;
          seen.add(y);
          into.add(y);
          next.push(y);
        }
      }
      frontier = next;
    }
    return into;
  }
  function neighbourhood(id, depth) {
    const set = new Set([id]);
    walk(id, 'up', depth, set);
    walk(id, 'down', depth, set);
    return set;
  }

  // ------------------------------------------------------------------ routing
  function hashFor(id, column) {
    let hsh = '#node=' + encodeURIComponent(id);
    if (column) hsh += '&column=' + encodeURIComponent(column);
    if (isLarge() && state.depth !== 2) hsh += '&depth=' + state.depth;
    return hsh;
  }
  function parseHash() {
    const out = {};
    const s = location.hash.replace(/^#/, '');
    if (!s) return out;
    for (const part of s.split('&')) {
      const eq = part.indexOf('=');
      if (eq < 0) continue;
      try { out[part.slice(0, eq)] = decodeURIComponent(part.slice(eq + 1)); } catch (e) { /* bad escape: ignore */ }
    }
    return out;
  }
  function writeHash() {
    const want = state.selected ? hashFor(state.selected, state.column) : '';
    if (location.hash === want || (!want && !location.hash)) return;
    location.hash = want; // a history entry each, so Back works (file:// refuses pushState)
  }
  function applyHash() {
    const p = parseHash();
    const d = parseInt(p.depth, 10);
    if (d >= 1 && d <= 5) state.depth = d;
    const id = p.node && M.byId.has(p.node) ? p.node : null;
    const column = id && p.column ? p.column : null;
    if (id === state.selected && column === state.column && $('depth').value === String(state.depth)) return;
    $('depth').value = String(state.depth);
    select(id, column, { fromHash: true });
  }

  /** The one way selection changes. */
  function select(id, column, opts) {
    opts = opts || {};
    if (id && !M.byId.has(id)) id = null;
    const nodeChanged = id !== state.selected;
    state.selected = id;
    state.column = id ? (column || null) : null;
    if (!opts.fromHash) writeHash();
    renderGraph({ recenter: nodeChanged || !!opts.recenter });
    renderDetails({ scrollTop: nodeChanged });
    markListSelection();
  }

  // -------------------------------------------------------------------- graph
  function nodeColumns(lin) {
    const out = new Map(); // node id -> [{column, cls}]
    if (!lin) return out;
    const add = function (node, column, cls) {
      if (!out.has(node)) out.set(node, []);
      out.get(node).push({ column: column, cls: cls });
    };
    add(state.selected, state.column, 'self');
    const byDepth = function (a, b) { return a.depth - b.depth || (a.column < b.column ? -1 : a.column > b.column ? 1 : 0); };
    Array.from(lin.up.cols.values()).sort(byDepth).forEach(function (r) { add(r.node, r.column, 'up'); });
    Array.from(lin.down.cols.values()).sort(byDepth).forEach(function (r) { add(r.node, r.column, 'down'); });
    return out;
  }

  function renderGraph(opts) {
    const t0 = performance.now();
    const total = M.nodes.length;
    const large = isLarge();
    const sel = state.selected;
    const lin = lineage();
    const empty = $('graph-empty');
    $('depth-wrap').hidden = !large;
    let ids;
    if (!large) {
      ids = M.nodes.map(function (n) { return n.id; });
    } else if (!sel) {
      ids = [];
    } else {
      const set = neighbourhood(sel, state.depth);
      if (lin) {
        for (const r of lin.up.cols.values()) if (M.byId.has(r.node)) set.add(r.node);
        for (const r of lin.down.cols.values()) if (M.byId.has(r.node)) set.add(r.node);
      }
      ids = Array.from(set).sort(function (a, b) { return M.byId.get(a).index - M.byId.get(b).index; });
    }
    const drawn = new Set(ids);
    // status line / empty prompt
    if (!total) {
      empty.hidden = false;
      clear(empty);
      empty.appendChild(h('div', { class: 'box' }, 'This project has no models, sources or seeds yet.'));
    } else if (large && !sel) {
      empty.hidden = false;
      clear(empty);
      empty.appendChild(h('div', { class: 'box' },
        h('strong', null, fmtNum(total) + ' nodes'), ' are too many to draw at once.', h('br'),
        'Search or pick a node in the list to draw its neighbourhood.'));
    } else {
      empty.hidden = true;
    }
    $('graph-status').textContent = large
      ? 'showing ' + fmtNum(ids.length) + ' of ' + fmtNum(total) + ' nodes' +
        (sel ? ' · depth ' + state.depth + (lin ? ' + column lineage' : '') : '')
      : 'showing ' + fmtNum(ids.length) + ' of ' + fmtNum(total) + ' nodes';

    // edges to draw
    const edges = [];
    for (const id of ids) {
      for (const to of M.byId.get(id).down) if (drawn.has(to)) edges.push({ from: id, to: to });
    }
    const upEdges = new Set(), downEdges = new Set(), extra = [];
    const upNodes = new Set(), downNodes = new Set();
    if (lin) {
      // node-level edges and nodes on the column's lineage; a column edge
      // between nodes with no dependency edge is drawn as an extra (dashed) edge
      const mark = function (closure, edgeKeys, nodeIds) {
        for (const ab of closure.edges) {
          const a = ab[0].split('\u0000')[0], b = ab[1].split('\u0000')[0];
          if (a === b) continue;
          const k = colKey(a, b);
          if (edgeKeys.has(k)) continue;
          edgeKeys.add(k);
          if (!M.edgeSet.has(k) && drawn.has(a) && drawn.has(b)) extra.push({ from: a, to: b });
        }
        for (const r of closure.cols.values()) nodeIds.add(r.node);
      };
      mark(lin.up, upEdges, upNodes);
      mark(lin.down, downEdges, downNodes);
    }
    const seenExtra = new Set();
    for (const e of extra) {
      const k = colKey(e.from, e.to);
      if (seenExtra.has(k)) continue;
      seenExtra.add(k);
      edges.push(e);
    }
    // connected set for dimming in the full graph
    let related = null;
    if (!large && sel) {
      related = new Set([sel]);
      walk(sel, 'up', Infinity, related);
      walk(sel, 'down', Infinity, related);
      for (const x of upNodes) related.add(x);
      for (const x of downNodes) related.add(x);
    }
    const cols = nodeColumns(lin);
    const heightOf = function (id) {
      const c = cols.get(id);
      if (!c) return NODE_H;
      return NODE_H + 6 + Math.min(c.length, MAX_NODE_COLS + 1) * COL_LINE;
    };
    const t1 = performance.now();
    const lay = layoutGraph(ids, edges, heightOf);
    perf.layoutMs = performance.now() - t1;
    view.layout = lay;

    // draw
    const gEdges = $('edges'), gNodes = $('nodes');
    const fe = document.createDocumentFragment(), fn = document.createDocumentFragment();
    const top = [];
    for (const r of lay.routes) {
      const k = colKey(r.from, r.to);
      const cls = ['edge'];
      let marker = 'url(#arrow)';
      if (upEdges.has(k)) { cls.push('lineage'); marker = 'url(#arrow-lineage)'; }
      else if (downEdges.has(k)) { cls.push('lineage-down'); marker = 'url(#arrow-down)'; }
      if (!M.edgeSet.has(k)) cls.push('extra');
      if (sel && (r.from === sel || r.to === sel)) cls.push('adjacent');
      if (related && !(related.has(r.from) && related.has(r.to))) cls.push('dim');
      const p = sv('path', { class: cls.join(' '), 'data-from': r.from, 'data-to': r.to, d: r.d, 'marker-end': marker });
      if (cls.length > 1 && (cls[1] === 'lineage' || cls[1] === 'lineage-down')) top.push(p); else fe.appendChild(p);
    }
    for (const p of top) fe.appendChild(p);
    const charsName = Math.floor((NODE_W - 30) / 7.9);
    const charsCol = Math.floor((NODE_W - 22) / 7.0);
    for (const id of ids) {
      const node = M.byId.get(id);
      const b = lay.boxes.get(id);
      const cls = ['node', 'kind-' + node.kclass];
      if (id === sel) cls.push('selected');
      if (upNodes.has(id)) cls.push('lineage');
      if (downNodes.has(id) && !upNodes.has(id)) cls.push('lineage-down');
      if (related && !related.has(id)) cls.push('dim');
      const sub = KIND_ONE[node.kclass] === 'node' ? node.kind : KIND_ONE[node.kclass];
      const g = sv('g', { class: cls.join(' '), 'data-id': id, transform: 'translate(' + b.x + ',' + b.y + ')' },
        sv('title', null, id + (node.relation ? '\n' + node.relation : '')),
        sv('rect', { class: 'box', width: b.w, height: b.h, rx: 6, ry: 6 }),
        sv('rect', { class: 'stripe', x: 0, y: 0, width: 5, height: b.h, rx: 2 }),
        sv('text', { class: 'label', x: 13, y: 18 }, truncate(node.name, charsName)),
        sv('text', { class: 'sub', x: 13, y: 33 }, sub + (node.materialized ? ' · ' + node.materialized : '')));
      if (node.health) {
        g.appendChild(sv('circle', { class: 'status-dot st-' + node.health, cx: b.w - 11, cy: 11, r: 4.5 },
          sv('title', null, node.health === 'fail' ? 'failing tests, freshness or last run' : 'warnings')));
      }
      const c = cols.get(id);
      if (c) {
        g.appendChild(sv('line', { class: 'cols-sep', x1: 8, x2: b.w - 8, y1: NODE_H, y2: NODE_H }));
        const shown = c.length > MAX_NODE_COLS + 1 ? c.slice(0, MAX_NODE_COLS) : c;
        shown.forEach(function (col, i) {
          g.appendChild(sv('text', {
            class: 'node-col ' + col.cls, x: 13, y: NODE_H + 14 + i * COL_LINE,
            'data-ref': id + '.' + col.column
          }, (col.cls === 'up' ? '↑ ' : col.cls === 'down' ? '↓ ' : '● ') + truncate(col.column, charsCol)));
        });
        if (shown.length < c.length) {
          g.appendChild(sv('text', { class: 'node-col more', x: 13, y: NODE_H + 14 + shown.length * COL_LINE },
            '+' + (c.length - shown.length) + ' more'));
        }
      }
      fn.appendChild(g);
    }
    clear(gEdges); clear(gNodes);
    gEdges.appendChild(fe);
    gNodes.appendChild(fn);

    // view: fit a new drawing; otherwise pan only as much as the selection needs
    const drawnKey = large ? ids.join('\u0001') : 'all';
    const linKey = lin ? lineageCache.key : '';
    if (!view.fitted || (large && drawnKey !== view.drawnKey)) {
      fit(large ? 0.5 : 0.1);
      if (sel && large) ensureVisible(sel, 0);
      view.fitted = ids.length > 0;
    } else if (lin && linKey !== view.linKey) {
      fitNodes([sel].concat(Array.from(upNodes), Array.from(downNodes)), 0.45, 0);
    } else if (sel && opts && opts.recenter) {
      // the selection and its direct neighbours, at a zoom where names can be read
      fitNodes(Array.from(neighbourhood(sel, 1)), READABLE_K, READABLE_K);
    }
    view.drawnKey = drawnKey;
    view.linKey = linKey;
    applyView();
    perf.renderMs = performance.now() - t0;
  }

  function svgSize() {
    const r = $('graph').getBoundingClientRect();
    return { w: Math.max(r.width, 50), h: Math.max(r.height, 50) };
  }
  function applyView() {
    $('viewport').setAttribute('transform', 'translate(' + view.tx.toFixed(1) + ',' + view.ty.toFixed(1) + ') scale(' + view.k.toFixed(4) + ')');
  }
  /** Zoom and pan so the box (layout coordinates) fills the view, k in [minK, 1]. */
  function fitBox(x0, y0, x1, y1, minK) {
    const s = svgSize();
    const pad = 30;
    const w = Math.max(x1 - x0, 1), hh = Math.max(y1 - y0, 1);
    const k = Math.min(1, (s.w - 2 * pad) / w, (s.h - 2 * pad) / hh);
    view.k = Math.max(minK || 0.05, k);
    view.tx = (s.w - w * view.k) / 2 - x0 * view.k;
    view.ty = (s.h - hh * view.k) / 2 - y0 * view.k;
    if (w * view.k > s.w - 2 * pad) view.tx = pad - x0 * view.k;
    if (hh * view.k > s.h - 2 * pad) view.ty = pad - y0 * view.k;
    applyView();
  }
  function fit(minK) {
    const lay = view.layout;
    if (!lay || !lay.boxes.size) { view.k = 1; view.tx = 20; view.ty = 20; applyView(); return; }
    fitBox(0, 0, lay.width, lay.height, minK);
  }
  /** Fit the given nodes when they are not all in view already, or the zoom is below readableK. */
  function fitNodes(ids, minK, readableK) {
    const lay = view.layout;
    if (!lay) return;
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    let inView = true;
    const s = svgSize();
    for (const id of ids) {
      const b = lay.boxes.get(id);
      if (!b) continue;
      x0 = Math.min(x0, b.x); y0 = Math.min(y0, b.y); x1 = Math.max(x1, b.x + b.w); y1 = Math.max(y1, b.y + b.h);
      const sx = b.x * view.k + view.tx, sy = b.y * view.k + view.ty;
      if (sx < 0 || sy < 0 || sx + b.w * view.k > s.w || sy + b.h * view.k > s.h) inView = false;
    }
    if (!isFinite(x0) || (inView && view.k >= (readableK || 0))) return;
    fitBox(x0, y0, x1, y1, minK);
    if (state.selected) ensureVisible(state.selected, 0);
  }
  function centerOn(id) {
    const b = view.layout && view.layout.boxes.get(id);
    if (!b) return;
    const s = svgSize();
    view.tx = s.w / 2 - (b.x + b.w / 2) * view.k;
    view.ty = s.h / 2 - (b.y + b.h / 2) * view.k;
    applyView();
  }
  /** Center on the node when it is not inside the view shrunk by margin (a fraction). */
  function ensureVisible(id, margin) {
    const b = view.layout && view.layout.boxes.get(id);
    if (!b) return;
    const s = svgSize();
    const mx = s.w * (margin || 0), my = s.h * (margin || 0);
    const x0 = b.x * view.k + view.tx, y0 = b.y * view.k + view.ty;
    const x1 = x0 + b.w * view.k, y1 = y0 + b.h * view.k;
    if (x0 < mx || y0 < my || x1 > s.w - mx || y1 > s.h - my) centerOn(id);
  }
  function zoomAt(factor, mx, my) {
    const k = Math.min(4, Math.max(0.05, view.k * factor));
    const px = (mx - view.tx) / view.k, py = (my - view.ty) / view.k;
    view.k = k;
    view.tx = mx - px * k;
    view.ty = my - py * k;
    applyView();
  }

  function setupGraphEvents() {
    const svg = $('graph');
    let drag = null;
    let suppressClick = false;
    svg.addEventListener('mousedown', function (e) {
      if (e.button !== 0) return;
      drag = { x: e.clientX, y: e.clientY, tx: view.tx, ty: view.ty, moved: false };
      e.preventDefault();
    });
    window.addEventListener('mousemove', function (e) {
      if (!drag) return;
      const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
      if (!drag.moved && Math.abs(dx) + Math.abs(dy) > 3) { drag.moved = true; svg.classList.add('panning'); }
      if (drag.moved) {
        view.tx = drag.tx + dx;
        view.ty = drag.ty + dy;
        applyView();
      }
    });
    window.addEventListener('mouseup', function () {
      if (!drag) return;
      suppressClick = drag.moved;
      drag = null;
      svg.classList.remove('panning');
    });
    svg.addEventListener('click', function (e) {
      if (suppressClick) { suppressClick = false; return; }
      const g = e.target.closest ? e.target.closest('g.node') : null;
      if (!g) return;
      const id = g.getAttribute('data-id');
      if (id === state.selected) {
        if (state.column) select(id, null);
        return;
      }
      select(id, null);
    });
    svg.addEventListener('wheel', function (e) {
      e.preventDefault();
      const r = svg.getBoundingClientRect();
      const dy = e.deltaMode === 1 ? e.deltaY * 16 : e.deltaY;
      zoomAt(Math.exp(-dy * 0.0015), e.clientX - r.left, e.clientY - r.top);
    }, { passive: false });
    const zoomCenter = function (f) { const s = svgSize(); zoomAt(f, s.w / 2, s.h / 2); };
    $('zoom-in').addEventListener('click', function () { zoomCenter(1.25); });
    $('zoom-out').addEventListener('click', function () { zoomCenter(0.8); });
    $('zoom-fit').addEventListener('click', function () { fit(0.05); });
    $('depth').addEventListener('change', function () {
      state.depth = parseInt($('depth').value, 10) || 2;
      writeHash();
      renderGraph({ recenter: true });
    });
  }

  function renderLegend() {
    const lg = $('legend');
    clear(lg);
    const present = new Set(M.nodes.map(function (n) { return n.kclass; }));
    for (const k of KIND_ORDER) {
      if (!present.has(k) && k !== 'model' && k !== 'source') continue;
      lg.appendChild(h('span', null, h('i', { class: 'swatch sw-' + k }), ' ', KIND_ONE[k]));
    }
    lg.appendChild(h('span', null, h('i', { class: 'line line-up' }), ' upstream column lineage'));
    lg.appendChild(h('span', null, h('i', { class: 'line line-down' }), ' downstream'));
  }

  // ------------------------------------------------------------------ sidebar
  function searchNodes(q) {
    const tokens = q.toLowerCase().split(/\s+/).filter(Boolean);
    const out = [];
    if (!tokens.length) {
      for (const n of M.nodes) out.push({ node: n, score: 0, why: '' });
      return out;
    }
    for (const n of M.nodes) {
      const s = n.search;
      let score = 0, why = '';
      let ok = true;
      for (const t of tokens) {
        let best = 0, w = '';
        if (s.name === t) best = 100;
        else if (s.name.startsWith(t)) best = 70;
        else if (s.name.indexOf(t) >= 0) best = 50;
        if (best < 40 && s.id.indexOf(t) >= 0) best = 40;
        if (best < 35 && s.relation.indexOf(t) >= 0) { best = 35; w = 'relation ' + n.relation; }
        if (best < 30) {
          for (let i = 0; i < s.cols.length; i++) {
            const c = s.cols[i];
            if (c === t) { best = 30; w = 'column ' + n.columns[i].name; break; }
            if (best < 20 && c.indexOf(t) >= 0) { best = 20; w = 'column ' + n.columns[i].name; }
          }
        }
        if (best < 15 && s.tags.some(function (x) { return x.indexOf(t) >= 0; })) { best = 15; w = 'tag'; }
        if (best < 10 && s.desc.indexOf(t) >= 0) { best = 10; w = 'description'; }
        if (!best) { ok = false; break; }
        score += best;
        if (w && !why) why = w;
      }
      if (ok) out.push({ node: n, score: score, why: why });
    }
    return out;
  }

  let listRows = [];
  function renderList() {
    const t0 = performance.now();
    const q = state.query.trim();
    const found = searchNodes(q);
    const groups = new Map();
    for (const r of found) {
      if (!groups.has(r.node.kclass)) groups.set(r.node.kclass, []);
      groups.get(r.node.kclass).push(r);
    }
    const byName = function (a, b) { return a.node.name < b.node.name ? -1 : a.node.name > b.node.name ? 1 : 0; };
    let order;
    if (q) {
      groups.forEach(function (g) { g.sort(function (a, b) { return b.score - a.score || byName(a, b); }); });
      order = Array.from(groups.keys()).sort(function (a, b) {
        return groups.get(b)[0].score - groups.get(a)[0].score || KIND_ORDER.indexOf(a) - KIND_ORDER.indexOf(b);
      });
    } else {
      groups.forEach(function (g) { g.sort(byName); });
      order = KIND_ORDER.filter(function (k) { return groups.has(k); });
    }
    const ul = $('results');
    const frag = document.createDocumentFragment();
    listRows = [];
    const limit = state.listAll ? Infinity : LIST_LIMIT;
    let shown = 0;
    for (const k of order) {
      const g = groups.get(k);
      if (shown >= limit) break;
      frag.appendChild(h('li', { class: 'group-head' }, h('i', { class: 'swatch sw-' + k }), KIND_LABEL[k], h('span', { class: 'count' }, fmtNum(g.length))));
      for (const r of g) {
        if (shown >= limit) break;
        const n = r.node;
        const sub = r.why || n.relation || n.file;
        const li = h('li', { class: 'result', 'data-id': n.id, role: 'option', title: n.id },
          h('span', { class: 'r-name' }, n.name,
            n.health ? h('i', { class: 'r-dot st-bg-' + n.health, title: n.health === 'fail' ? 'failing' : 'warnings' }) : null),
          sub ? h('span', { class: 'r-sub' }, sub) : null);
        frag.appendChild(li);
        listRows.push(li);
        shown++;
      }
    }
    if (shown < found.length) {
      frag.appendChild(h('li', { class: 'more' }, fmtNum(found.length - shown) + ' more ',
        h('button', { type: 'button', onclick: function () { state.listAll = true; renderList(); } }, 'show all')));
    }
    clear(ul);
    ul.appendChild(frag);
    state.active = 0;
    state.keyboard = false;
    markListSelection();
    $('search-info').textContent = q
      ? fmtNum(found.length) + (found.length === 1 ? ' match' : ' matches') + (found.length ? ' · Enter selects the first' : '')
      : fmtNum(M.nodes.length) + ' nodes';
    ul.setAttribute('data-query', state.query);
    perf.searchMs = performance.now() - t0;
  }
  function markListSelection() {
    listRows.forEach(function (li, i) {
      li.classList.toggle('current', li.getAttribute('data-id') === state.selected);
      li.classList.toggle('active', (state.keyboard || !!state.query.trim()) && i === state.active);
    });
  }
  function setupSidebar() {
    const input = $('search');
    input.addEventListener('input', function () {
      state.query = input.value;
      state.listAll = false;
      renderList();
    });
    input.addEventListener('keydown', function (e) {
      if (e.key === 'Enter') {
        const li = listRows[state.active] || listRows[0];
        if (li) select(li.getAttribute('data-id'), null);
        e.preventDefault();
      } else if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
        if (!listRows.length) return;
        state.active = (state.active + (e.key === 'ArrowDown' ? 1 : -1) + listRows.length) % listRows.length;
        state.keyboard = true;
        markListSelection();
        listRows[state.active].scrollIntoView({ block: 'nearest' });
        e.preventDefault();
      } else if (e.key === 'Escape') {
        input.value = '';
        state.query = '';
        renderList();
      }
    });
    $('results').addEventListener('click', function (e) {
      const li = e.target.closest ? e.target.closest('li.result') : null;
      if (li) select(li.getAttribute('data-id'), null);
    });
    document.addEventListener('keydown', function (e) {
      if (e.key === '/' && document.activeElement !== input && !e.ctrlKey && !e.metaKey) {
        input.focus();
        input.select();
        e.preventDefault();
      }
    });
  }

  // ------------------------------------------------------------------ details
  function nodeLink(id) {
    const n = M.byId.get(id);
    return h('a', { href: hashFor(id, null), class: 'node-link', 'data-id': id, title: id },
      h('i', { class: 'swatch sw-' + (n ? n.kclass : 'other') }), ' ', n ? n.name : id);
  }
  function badge(status, extra) {
    const s = str(status) || 'never run';
    return h('span', { class: 'badge s-' + statusClass(s) + (extra ? ' ' + extra : '') }, s);
  }
  function section(id, title, content) {
    return h('section', { class: 'section', id: 'sec-' + id, 'data-section': id }, h('h3', null, title), content);
  }
  function props(rows) {
    const dl = h('dl', { class: 'props' });
    for (const r of rows) {
      if (r[1] === null || r[1] === undefined || r[1] === '') continue;
      dl.appendChild(h('dt', null, r[0]));
      dl.appendChild(h('dd', null, r[1]));
    }
    return dl;
  }
  function table(headers, rows) {
    return h('table', { class: 'grid' },
      h('thead', null, h('tr', null, headers.map(function (x) {
        return h('th', { class: x.charAt(0) === '#' ? 'num' : null }, x.replace(/^#/, ''));
      }))),
      h('tbody', null, rows));
  }
  function shortTestName(t, node) {
    const name = str(t.name);
    const i = name.indexOf('_' + node.name + '_');
    const j = name.indexOf('_' + node.name);
    if (i > 0) return name.slice(0, i);
    if (j > 0 && j + node.name.length + 1 === name.length) return name.slice(0, j);
    return name || 'test';
  }

  function trend(history) {
    const hs = arr(history).map(obj).filter(Boolean).slice(-30);
    if (!hs.length) return h('span', { class: 'empty-note' }, '—');
    const w = 7, gap = 2, H = 16;
    const s = sv('svg', { class: 'trend', width: hs.length * (w + gap), height: H, viewBox: '0 0 ' + (hs.length * (w + gap)) + ' ' + H, 'aria-label': 'test history' });
    hs.forEach(function (x, i) {
      const st = statusClass(x.status);
      const bad = st === 'fail' || st === 'error' || st === 'warn';
      const bh = bad ? H : 7;
      s.appendChild(sv('rect', { class: 'st-' + st, x: i * (w + gap), y: H - bh, width: w, height: bh, rx: 1 },
        sv('title', null, fmtTime(x.at) + ' · ' + (str(x.status) || '?') + (num(x.failures) ? ' · ' + fmtNum(x.failures) + ' failing rows' : ''))));
    });
    return s;
  }

  function runChart(runs) {
    const rs = runs.slice(0, 40).reverse(); // oldest left
    const ds = rs.map(function (r) { return num(r.seconds) || 0; });
    const max = Math.max.apply(null, ds.concat([0.001]));
    const w = 8, gap = 3, H = 40;
    const W = rs.length * (w + gap);
    const s = sv('svg', { class: 'run-chart', width: W, height: H + 1, viewBox: '0 0 ' + W + ' ' + (H + 1), 'aria-label': 'run durations' });
    rs.forEach(function (r, i) {
      const bh = Math.max(2, (ds[i] / max) * H);
      s.appendChild(sv('rect', { class: 'st-' + statusClass(r.status), x: i * (w + gap), y: H - bh, width: w, height: bh },
        sv('title', null, fmtTime(r.started_at) + ' · ' + fmtDuration(r.seconds) + ' · ' + (str(r.status) || '?'))));
    });
    return s;
  }

  function gauge(f) {
    const age = num(f.age_seconds), warn = num(f.warn_after_seconds), err = num(f.error_after_seconds);
    if (age === null) return null;
    const top = Math.max(age, warn || 0, err || 0) * 1.1 || 1;
    const W = 360, H = 30;
    const x = function (v) { return Math.max(0, Math.min(W, (v / top) * W)); };
    const s = sv('svg', { class: 'gauge', width: W, height: H, viewBox: '0 0 ' + W + ' ' + H, 'aria-label': 'age against thresholds' });
    s.appendChild(sv('rect', { class: 'track', x: 0, y: 4, width: W, height: 10, rx: 3 }));
    s.appendChild(sv('rect', { class: 'st-' + statusClass(f.status), x: 0, y: 4, width: Math.max(2, x(age)), height: 10, rx: 3 },
      sv('title', null, 'age ' + fmtAge(age))));
    if (warn !== null) {
      s.appendChild(sv('line', { class: 'tick', x1: x(warn), x2: x(warn), y1: 1, y2: 17 }));
      s.appendChild(sv('text', { x: Math.min(x(warn), W - 60), y: 28 }, 'warn ' + fmtAge(warn)));
    }
    if (err !== null) {
      s.appendChild(sv('line', { class: 'tick', x1: x(err) - 1, x2: x(err) - 1, y1: 1, y2: 17 }));
      s.appendChild(sv('text', { x: Math.max(0, Math.min(x(err), W) - 70), y: 28, 'text-anchor': 'start' }, 'error ' + fmtAge(err)));
    }
    return s;
  }

  function columnLineageBlock(node, column) {
    const lin = lineage();
    const box = h('div', { class: 'col-lineage' }, h('h4', null, 'Column lineage of ', h('code', null, column)));
    const list = function (cols, cls, title) {
      const items = Array.from(cols.values()).sort(function (a, b) {
        return a.depth - b.depth || (a.node + a.column < b.node + b.column ? -1 : 1);
      });
      box.appendChild(h('div', { class: 'dir' }, title + ' (' + items.length + ')'));
      if (!items.length) { box.appendChild(h('div', { class: 'empty-note' }, 'none recorded')); return; }
      const ul = h('ul');
      for (const r of items) {
        const n = M.byId.get(r.node);
        const li = h('li', {
          class: cls, 'data-ref': r.node + '.' + r.column, 'data-kind': r.kind,
          'data-node': r.node, 'data-col': r.column, title: r.node + '.' + r.column + ' (' + r.kind + ', ' + r.depth + ' step' + (r.depth > 1 ? 's' : '') + ')'
        },
        h('span', { class: 'lk' }, r.kind), ' ',
        '\u2002'.repeat(Math.min(r.depth - 1, 6)),
        h('i', { class: 'swatch sw-' + (n ? n.kclass : 'other') }), ' ',
        (n ? n.name : r.node), '.', h('code', null, r.column));
        ul.appendChild(li);
      }
      box.appendChild(ul);
    };
    list(lin.up.cols, 'upstream-column', 'Upstream');
    list(lin.down.cols, 'downstream-column', 'Downstream');
    box.addEventListener('click', function (e) {
      const li = e.target.closest ? e.target.closest('li[data-node]') : null;
      if (!li) return;
      const id = li.getAttribute('data-node');
      if (M.byId.has(id)) select(id, li.getAttribute('data-col'));
    });
    return box;
  }

  function renderHome(panel) {
    if (M.missing) panel.appendChild(h('div', { class: 'fatal' }, 'No docs data: data.js is missing or broken. Run `sluice docs generate` again.'));
    panel.appendChild(h('div', { class: 'details-head' }, h('h2', null, M.project),
      h('div', { class: 'relation' }, 'generated ' + fmtTime(M.generated_at) + (M.version ? ' by sluice ' + M.version : ''))));
    const counts = KIND_ORDER.map(function (k) {
      const c = M.nodes.filter(function (n) { return n.kclass === k; }).length;
      return c ? [KIND_LABEL[k], fmtNum(c)] : null;
    }).filter(Boolean);
    panel.appendChild(section('overview', 'Project', props(counts.concat([['Edges', fmtNum(M.edges.length)]]))));
    const failing = [], stale = [];
    for (const n of M.nodes) {
      for (const t of n.tests) {
        const s = statusClass(t.status);
        if (s === 'fail' || s === 'error' || s === 'warn') failing.push([n, t]);
      }
      if (n.freshness && ['warn', 'error', 'runtime-error'].indexOf(statusClass(n.freshness.status)) >= 0) stale.push(n);
    }
    if (failing.length) {
      panel.appendChild(section('attention', 'Tests needing attention', h('ul', { class: 'links' }, failing.slice(0, 100).map(function (nt) {
        return h('li', null, badge(nt[1].status, 'small'), ' ', nodeLink(nt[0].id), ' ', h('span', { class: 'mono' }, str(nt[1].name)));
      }))));
    }
    if (stale.length) {
      panel.appendChild(section('stale', 'Freshness warnings', h('ul', { class: 'links' }, stale.slice(0, 100).map(function (n) {
        return h('li', null, badge(n.freshness.status, 'small'), ' ', nodeLink(n.id), ' age ' + fmtAge(n.freshness.age_seconds));
      }))));
    }
    panel.appendChild(h('section', { class: 'section' }, h('p', { class: 'empty-note' },
      isLarge() ? 'Search or pick a node on the left to see its details and neighbourhood.' : 'Click a node in the graph or the list to see its details.')));
  }

  let sqlMode = 'compiled';
  function renderDetails(opts) {
    const panel = $('details');
    const keepScroll = panel.scrollTop;
    clear(panel);
    const node = state.selected ? M.byId.get(state.selected) : null;
    if (!node) { renderHome(panel); panel.scrollTop = 0; return; }
    panel.appendChild(h('div', { class: 'details-head' },
      h('button', { type: 'button', class: 'close', title: 'Back to the project overview', onclick: function () { select(null, null); } }, '×'),
      h('span', { class: 'kind-badge k-' + node.kclass }, node.kind), ' ',
      node.health ? badge(node.health === 'fail' ? 'fail' : 'warn', 'small') : null,
      h('h2', null, node.name),
      node.relation ? h('div', { class: 'relation' }, node.relation) : null));
    const nav = h('nav', { class: 'section-nav' });
    panel.appendChild(nav);
    const sections = [];
    const add = function (id, title, content) { sections.push([id, title]); panel.appendChild(section(id, title, content)); };

    // overview
    const ov = h('div');
    ov.appendChild(props([
      ['Kind', node.kind], ['Relation', node.relation ? h('code', null, node.relation) : ''],
      ['File', node.file ? h('code', null, node.file) : ''], ['Materialized', node.materialized],
      ['Tags', node.tags.length ? node.tags.map(function (t) { return h('span', { class: 'chip' }, t); }) : ''],
      ['Last run', node.runs.length ? [badge(node.runs[0].status, 'small'), ' ', fmtTime(node.runs[0].started_at)] : ''],
      ['Tests', node.tests.length ? testSummary(node.tests) : '']
    ]));
    if (node.description) ov.appendChild(h('p', { class: 'description' }, node.description));
    else ov.appendChild(h('p', { class: 'description empty-note' }, 'No description.'));
    ov.appendChild(h('h4', null, 'Depends on (' + node.up.length + ')'));
    ov.appendChild(node.up.length ? h('ul', { class: 'links' }, node.up.map(function (id) { return h('li', null, nodeLink(id)); })) : h('div', { class: 'empty-note' }, 'nothing'));
    ov.appendChild(h('h4', null, 'Used by (' + node.down.length + ')'));
    ov.appendChild(node.down.length ? h('ul', { class: 'links' }, node.down.map(function (id) { return h('li', null, nodeLink(id)); })) : h('div', { class: 'empty-note' }, 'nothing'));
    add('overview', 'Overview', ov);

    // columns
    const colTests = new Map();
    for (const t of node.tests) {
      const c = str(t.column);
      if (!c) continue;
      if (!colTests.has(c)) colTests.set(c, []);
      colTests.get(c).push(t);
    }
    const known = new Set(node.columns.map(function (c) { return c.name; }));
    if (node.columns.length || state.column) {
      const rows = [];
      for (const c of node.columns) {
        const hasLin = M.colUp.has(colKey(node.id, c.name)) || M.colDown.has(colKey(node.id, c.name));
        const tr = h('tr', {
          class: 'column' + (c.name === state.column ? ' selected' : '') + (hasLin ? ' has-lineage' : ''),
          'data-column': c.name, title: hasLin ? 'click to show the column lineage' : 'no lineage recorded'
        },
        h('td', null, h('code', null, c.name)),
        h('td', { class: 'type' }, c.type),
        h('td', null, c.description),
        h('td', null, (colTests.get(c.name) || []).map(function (t) {
          return h('span', { class: 'badge small s-' + statusClass(t.status || 'never run'), title: str(t.name) + ': ' + (str(t.status) || 'never run') + (num(t.failures) ? ', ' + fmtNum(t.failures) + ' failing rows' : '') }, shortTestName(t, node));
        })));
        rows.push(tr);
        if (c.name === state.column) rows.push(h('tr', { class: 'lineage-row' }, h('td', { colspan: 4 }, columnLineageBlock(node, c.name))));
      }
      const wrap = h('div');
      if (state.column && !known.has(state.column)) wrap.appendChild(columnLineageBlock(node, state.column));
      if (rows.length) {
        const tbl = table(['Column', 'Type', 'Description', 'Tests'], rows);
        tbl.addEventListener('click', function (e) {
          if (e.target.closest && e.target.closest('.col-lineage')) return;
          const tr = e.target.closest ? e.target.closest('tr.column') : null;
          if (!tr) return;
          const name = tr.getAttribute('data-column');
          select(node.id, name === state.column ? null : name);
        });
        wrap.appendChild(tbl);
      }
      add('columns', 'Columns (' + node.columns.length + ')', wrap);
    }

    // SQL
    if (node.raw_sql || node.compiled_sql) {
      const wrap = h('div');
      const modes = [];
      if (node.compiled_sql) modes.push(['compiled', 'Compiled', node.compiled_sql]);
      if (node.raw_sql) modes.push(['raw', 'Raw', node.raw_sql]);
      let mode = modes.some(function (m) { return m[0] === sqlMode; }) ? sqlMode : modes[0][0];
      const pre = h('pre', { class: 'sql' }, h('code'));
      const toggle = h('div', { class: 'sql-toggle', role: 'tablist' });
      const show = function () {
        const m = modes.filter(function (x) { return x[0] === mode; })[0];
        pre.firstChild.textContent = m[2];
        pre.setAttribute('data-mode', m[0]);
        Array.prototype.forEach.call(toggle.children, function (b) { b.classList.toggle('on', b.getAttribute('data-mode') === mode); });
      };
      for (const m of modes) {
        toggle.appendChild(h('button', {
          type: 'button', 'data-mode': m[0],
          onclick: function () { mode = m[0]; sqlMode = mode; show(); }
        }, m[1]));
      }
      wrap.appendChild(toggle);
      wrap.appendChild(pre);
      show();
      add('sql', 'SQL', wrap);
    }

    // tests
    if (node.tests.length) {
      const rows = node.tests.map(function (t) {
        const f = num(t.failures);
        return h('tr', { class: 'test', 'data-test': str(t.name) },
          h('td', null, badge(t.status)),
          h('td', { class: 'test-name' }, h('code', null, str(t.name)),
            h('div', { class: 'test-meta' },
              t.column ? ['column ', h('code', null, str(t.column)), ' · '] : null,
              f !== null ? (f === 1 ? '1 failing row' : fmtNum(f) + ' failing rows') + ' · ' : '',
              'last run ', shortTime(t.last_run))),
          h('td', null, trend(t.history)));
      });
      add('tests', 'Tests (' + node.tests.length + ')', h('div', null, testSummary(node.tests),
        table(['Status', 'Test', 'Trend'], rows)));
    }

    // versions
    if (node.versions.length) {
      add('versions', 'Versions (' + node.versions.length + ')', table(['#Version', 'Timestamp', 'Operation', '#Rows', 'Run'],
        node.versions.slice(0, 200).map(function (v) {
          return h('tr', null, h('td', { class: 'num' }, str(v.version)), h('td', { class: 'nowrap' }, shortTime(v.timestamp)),
            h('td', null, str(v.operation)), h('td', { class: 'num' }, fmtNum(v.rows)), h('td', { class: 'mono' }, str(v.run_id) || '—'));
        })));
    }

    // runs
    if (node.runs.length) {
      const secs = node.runs.map(function (r) { return num(r.seconds); }).filter(function (x) { return x !== null; });
      const avg = secs.length ? secs.reduce(function (a, b) { return a + b; }, 0) / secs.length : null;
      add('runs', 'Runs (' + node.runs.length + ')', h('div', null,
        runChart(node.runs),
        h('div', { class: 'chart-caption' }, 'duration of the last ' + Math.min(40, node.runs.length) + ' runs, oldest left · last ' +
          fmtDuration(node.runs[0].seconds) + (avg !== null ? ' · average ' + fmtDuration(avg) : '')),
        table(['Started', '#Duration', 'Status', '#Rows', 'Run'], node.runs.slice(0, 200).map(function (r) {
          return h('tr', null, h('td', { class: 'nowrap' }, shortTime(r.started_at)), h('td', { class: 'num' }, fmtDuration(r.seconds)),
            h('td', null, badge(r.status, 'small')), h('td', { class: 'num' }, fmtNum(r.rows)), h('td', { class: 'mono' }, str(r.run_id)));
        }))));
    }

    // freshness and loads
    if (node.freshness || node.loads.length) {
      const wrap = h('div');
      const f = node.freshness;
      if (f) {
        wrap.appendChild(h('div', null, badge(f.status), ' ', num(f.age_seconds) !== null ? 'last load ' + fmtAge(f.age_seconds) + ' ago' : 'never loaded'));
        const g = gauge(f);
        if (g) wrap.appendChild(g);
        wrap.appendChild(props([
          ['Max loaded at', fmtTime(f.max_loaded_at)],
          ['Warn after', num(f.warn_after_seconds) !== null ? fmtAge(f.warn_after_seconds) : ''],
          ['Error after', num(f.error_after_seconds) !== null ? fmtAge(f.error_after_seconds) : ''],
          ['Checked at', fmtTime(f.checked_at)]
        ]));
      }
      if (node.loads.length) {
        const q = node.loads.reduce(function (a, l) { return a + (num(l.quarantined) || 0); }, 0);
        wrap.appendChild(h('h4', null, 'Loads (' + node.loads.length + ')' + (q ? ' · ' + fmtNum(q) + ' rows quarantined' : '')));
        wrap.appendChild(table(['At', 'Load', '#Rows', '#Quarantined'], node.loads.slice(0, 200).map(function (l) {
          const qn = num(l.quarantined) || 0;
          return h('tr', { class: 'load' }, h('td', { class: 'nowrap' }, shortTime(l.at)), h('td', { class: 'mono' }, str(l.load_id)),
            h('td', { class: 'num' }, fmtNum(l.rows)), h('td', { class: 'num' + (qn ? ' quarantined' : '') }, fmtNum(l.quarantined)));
        })));
      }
      add('freshness', f ? 'Freshness' : 'Loads', wrap);
    }

    // feature view
    if (node.feature_view) {
      const fv = node.feature_view;
      const online = obj(fv.online);
      const chips = function (xs, linkCols) {
        const list = arr(xs).map(str).filter(Boolean);
        if (!list.length) return '';
        return list.map(function (x) {
          if (linkCols && known.has(x)) {
            return h('span', { class: 'chip link', title: 'show the lineage of ' + x, onclick: function () { select(node.id, x); } }, x);
          }
          return h('span', { class: 'chip' }, x);
        });
      };
      add('feature_view', 'Feature view', props([
        ['Entities', chips(fv.entities, true)],
        ['Event timestamp', fv.event_timestamp ? h('code', null, str(fv.event_timestamp)) : ''],
        ['TTL', str(fv.ttl) || 'none'],
        ['Features', chips(fv.features, true)],
        ['Online store', online ? str(online.store) || 'none' : 'none'],
        ['Materialized at', online ? (online.materialized_at ? fmtTime(online.materialized_at) : 'never') : ''],
        ['Online entities', online && num(online.entities) !== null ? fmtNum(online.entities) : '']
      ]));
    }

    for (const s of sections) {
      nav.appendChild(h('a', {
        href: '#', 'data-target': 'sec-' + s[0],
        onclick: function (e) { e.preventDefault(); const t = $('sec-' + s[0]); if (t) t.scrollIntoView({ block: 'start' }); }
      }, s[1].replace(/ \(\d+\)$/, '')));
    }
    if (opts && opts.scrollTop) panel.scrollTop = 0;
    else panel.scrollTop = keepScroll;
    if (state.column) {
      const row = panel.querySelector('tr.lineage-row') || panel.querySelector('.col-lineage');
      if (row && row.getBoundingClientRect().bottom > panel.getBoundingClientRect().bottom) row.scrollIntoView({ block: 'nearest' });
    }
  }

  function testSummary(tests) {
    const c = {};
    for (const t of tests) { const s = str(t.status) || 'never run'; c[s] = (c[s] || 0) + 1; }
    return h('span', null, Object.keys(c).sort().map(function (s) { return badge(c[s] + ' ' + s, 'small s-' + statusClass(s)); }));
  }

  // -------------------------------------------------------------------- header
  function renderHeader() {
    document.title = M.project + ' · sluice docs';
    $('project').textContent = M.project;
    $('generated').textContent = 'generated ' + fmtTime(M.generated_at) + (M.version ? ' · sluice ' + M.version : '');
    const stats = $('stats');
    clear(stats);
    const count = function (k) { return M.nodes.filter(function (n) { return n.kclass === k; }).length; };
    const parts = [];
    for (const k of KIND_ORDER) { const c = count(k); if (c) parts.push(fmtNum(c) + ' ' + KIND_LABEL[k].toLowerCase()); }
    stats.appendChild(h('span', null, parts.join(' · ')));
    let pass = 0, bad = 0, warn = 0;
    for (const n of M.nodes) for (const t of n.tests) {
      const s = statusClass(t.status);
      if (s === 'pass') pass++; else if (s === 'fail' || s === 'error') bad++; else if (s === 'warn') warn++;
    }
    if (pass + bad + warn) {
      stats.appendChild(h('span', null, fmtNum(pass) + ' tests passing'));
      if (bad) stats.appendChild(h('span', { class: 'bad' }, fmtNum(bad) + ' failing'));
      if (warn) stats.appendChild(h('span', { class: 'warnc' }, fmtNum(warn) + ' warning'));
    }
  }

  // ---------------------------------------------------------------------- boot
  function boot() {
    M = prepare(window.SLUICE_DOCS);
    renderHeader();
    renderLegend();
    setupSidebar();
    setupGraphEvents();
    renderList();
    applyHash();
    if (!state.selected) { renderGraph({}); renderDetails({ scrollTop: true }); }
    window.addEventListener('hashchange', applyHash);
    let resizeTimer = 0;
    window.addEventListener('resize', function () {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(function () { if (state.selected) ensureVisible(state.selected, 0); }, 100);
    });
    document.body.setAttribute('data-ready', '1');
  }

  // A small surface for tests and for poking around in the console.
  window.SLUICE_APP = {
    select: function (id, column) { select(id, column || null); },
    reveal: function (id) { centerOn(id); },
    state: state,
    perf: perf,
    view: view
  };

  try {
    boot();
  } catch (e) {
    const d = document.getElementById('details');
    if (d) { clear(d); d.appendChild(h('div', { class: 'fatal' }, 'The docs failed to start: ' + (e && e.message))); }
    throw e;
  }
})();
