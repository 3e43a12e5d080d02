// The live option chain: one WebSocket (/ws/stream/), snapshot then numbered deltas.
// The socket handler only merges; one animation frame writes what changed since the last one, through
// references kept when the table was built, and never reads layout (a trading screen must not fall behind).
"use strict";

const CONFIG = JSON.parse(document.getElementById("dashboard-config").textContent);
const ALL_COLUMNS = CONFIG.columns;  // outermost (far from the strike) first
const STALE_PRICE_S = CONFIG.stale_price_s;
const LABELS = { oi: "OI", oi_change: "Chg OI", volume: "Vol", vega: "Vega", theta: "Theta", gamma: "Gamma",
                 delta: "Delta", iv: "IV", bid: "Bid", ask: "Ask", change: "Chg %", last_price: "LTP" };
const IST_UTC_OFFSET_S = 19_800;
const EXPIRY_CLOSE_UTC_S = 10 * 3600;  // 15:30 IST
const LAGS_KEPT = 5000;
const SMILE_EVERY_MS = 1000;
const CHART_EVERY_MS = 250;
const FLASH_MS = 600;
const NUMBER = new Intl.NumberFormat("en-IN");
// Quantities as traders read them on Indian screens (43.72L, 1.234Cr); the exact figure is the title.
const COMPACT = new Intl.NumberFormat("en-IN", { notation: "compact", maximumSignificantDigits: 4 });
const EXACT_FIELDS = new Set(["oi", "oi_change", "volume"]);
const PRICE = new Intl.NumberFormat("en-IN", { minimumFractionDigits: 2, maximumFractionDigits: 2 });

const $ = (id) => document.getElementById(id);
const finite = Number.isFinite;
const plus = (v, text) => (v > 0 ? `+${text}` : text);
const FORMAT = {
  last_price: (v) => v.toFixed(2), bid: (v) => v.toFixed(2), ask: (v) => v.toFixed(2),
  oi: (v) => COMPACT.format(v), volume: (v) => COMPACT.format(v), oi_change: (v) => plus(v, COMPACT.format(v)),
  iv: (v) => (v * 100).toFixed(2), delta: (v) => v.toFixed(3), gamma: (v) => v.toFixed(5),
  theta: (v) => v.toFixed(2), vega: (v) => v.toFixed(2), change: (v) => plus(v, v.toFixed(2)),
};

// What the page measures about itself (read by the browser test and bench/): see the README.
const chainStats = {
  deltas: 0, renders: 0, lagsMs: [],
  reset() { this.deltas = 0; this.renders = 0; this.lagsMs.length = 0; },
};
window.chainStats = chainStats;

const state = {
  ws: null, chain: null, seq: 0, resyncing: false, retry: 0,
  columns: ALL_COLUMNS.filter((c) => CONFIG.preferences.columns.includes(c)),
  range: CONFIG.preferences.strike_range,
  // token -> leg: { token, strike, type, row, stale, move, entry, cells: {field: cell}, cellList, tds }
  legs: new Map(),
  // ascending by strike: { strike, tr, CE, PE, priced, hidden, atm, "itm-ce", "itm-pe" }
  strikes: [],
  indexToken: null, futureToken: null, lotSize: null,
  forward: null, atm: null, exchangeTime: null, oiScale: 1,
  rowsDirty: false, barsDue: false, charted: null, chartedLeg: null, active: null,
  frameDue: false, frameTime: 0, flashing: new Map(), flashTimer: null,
  smileDue: false, smilePoints: [], smileScale: null, lagWindow: [],
};
// Merged between frames: the newest row per token, the chain's newest meta, the deltas' receive times
// (and, between chart redraws, the forming bars).
const pending = { rows: new Map(), meta: null, received: [], bars: new Map() };

const candles = new Candles.CandleChart($("candles"), { onStatus: (text) => { $("candles-status").textContent = text; } });

function show(value, field) {
  return value === null || value === undefined || Number.isNaN(value) ? "—" : FORMAT[field](value);
}

function istTime(epoch) {
  return new Date((epoch + IST_UTC_OFFSET_S) * 1000).toISOString().slice(11, 19);
}

// fetch(), or null when the server cannot be reached (a restart, a dropped network): the callers say
// so on the page and try again on their next turn. Any other error propagates.
async function request(url, options) {
  try {
    return await fetch(url, options);
  } catch (error) {
    if (error instanceof TypeError) return null;
    throw error;
  }
}

function setConnection(text, kind) {
  const badge = $("connection");
  badge.textContent = text;
  badge.dataset.state = kind;
}

// --- The socket: parse, check seq, merge, ask for a frame. ---

async function loadExpiries() {
  const underlying = $("underlying").value;
  const response = await request(`/api/v1/chains/${encodeURIComponent(underlying)}/expiries`);
  if (!response || !response.ok) {
    setTimeout(loadExpiries, 2000);
    return;
  }
  const { expiries } = await response.json();
  $("expiry").innerHTML = expiries.map((e) => `<option>${e}</option>`).join("");
  subscribe();
}

function subscribe() {
  const next = `${$("underlying").value}:${$("expiry").value}`;
  if (!state.ws || state.ws.readyState !== WebSocket.OPEN || !$("expiry").value) return;
  if (state.chain && state.chain !== next) send({ action: "unsubscribe", chain: state.chain });
  state.chain = next;
  send({ action: "subscribe", chain: next });
}

function send(message) {
  state.ws.send(JSON.stringify(message));
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/ws/stream/`);
  state.ws = ws;
  setConnection("connecting", "connecting");
  ws.onopen = () => { state.retry = 0; setConnection("live", "live"); state.chain = null; subscribe(); };
  ws.onmessage = (event) => receive(JSON.parse(event.data));
  ws.onclose = (event) => {
    if (event.code === 4401) { location.href = "/login/?next=/"; return; }
    const delay = Math.min(5000, 500 * 2 ** state.retry++);
    setConnection(`reconnecting in ${(delay / 1000).toFixed(1)} s`, "down");
    setTimeout(connect, delay);
  };
}

function receive(message) {
  if (message.type === "snapshot") return acceptSnapshot(message);
  if (message.type === "delta") return acceptDelta(message);
  if (message.type === "error") console.warn("stream error", message);
}

function acceptDelta(delta) {
  if (state.resyncing) return;  // a snapshot is on its way: these rows are in it
  if (delta.seq !== state.seq + 1) {  // a gap: start again from a fresh snapshot
    state.resyncing = true;
    send({ action: "snapshot", chain: state.chain });
    return;
  }
  state.seq = delta.seq;
  chainStats.deltas++;
  for (const row of delta.rows) {
    const merged = pending.rows.get(row.instrument_token);
    if (merged) Object.assign(merged, row);
    else pending.rows.set(row.instrument_token, row);
  }
  const meta = delta.chains && delta.chains[state.chain];
  if (meta) pending.meta = Object.assign(pending.meta || {}, meta);
  if (delta.bars) mergeBars(delta.bars);
  pending.received.push(delta.received_at);
  if (pending.received.length > LAGS_KEPT) pending.received.shift();  // a hidden tab runs no frames
  requestFrame();
}

// The forming candle is redrawn a few times a second, not per delta: the chart library's redraw costs
// more than the whole chain's, and a candle's body moves too little in 100 ms to read.
function scheduleBars() {
  if (state.barsDue) return;
  state.barsDue = true;
  setTimeout(flushBars, CHART_EVERY_MS);
}

function flushBars() {
  state.barsDue = false;
  const bars = pending.bars;
  pending.bars = new Map();
  for (const [token, queue] of bars) for (const entry of queue) candles.live({ [token]: entry });
}

// The newest forming bar per token, keeping the last state of a minute that closed in between.
function mergeBars(bars) {
  for (const [token, entry] of Object.entries(bars)) {
    const queue = pending.bars.get(token);
    if (!queue) pending.bars.set(token, [entry]);
    else if (queue[queue.length - 1][0] === entry[0]) queue[queue.length - 1] = entry;
    else queue.push(entry);
  }
  scheduleBars();
}

function requestFrame() {
  if (state.frameDue) return;
  state.frameDue = true;
  requestAnimationFrame(renderFrame);
}

// --- One frame: write what changed, once. ---

function renderFrame() {
  state.frameDue = false;
  state.frameTime = performance.now();
  const now = performance.timeOrigin + state.frameTime;
  const { rows, meta, received } = pending;
  pending.rows = new Map();
  pending.meta = null;
  pending.received = [];
  for (const [token, row] of rows) applyRow(token, row);
  if (meta) applyMeta(meta);
  if (state.rowsDirty) refreshRows();
  endFlashes(state.frameTime);
  if (received.length) {
    chainStats.renders++;
    for (const at of received) {
      if (!finite(at)) continue;
      chainStats.lagsMs.push(now - at * 1000);
      state.lagWindow.push(now - at * 1000);
    }
    const over = chainStats.lagsMs.length - LAGS_KEPT;
    if (over > 0) chainStats.lagsMs.splice(0, over);
  }
  scheduleSmile();
}

function applyRow(token, row) {
  if (token === state.indexToken) return showQuote($("spot"), row);
  if (token === state.futureToken) return showQuote($("future"), row);
  const leg = state.legs.get(token);
  if (!leg) return;
  const previous = leg.row.last_price;
  Object.assign(leg.row, row);
  if ("last_trade_time" in row) markAge(leg);
  renderLeg(leg, previous);
}

function showQuote(element, row) {
  if (!finite(row.last_price)) return;
  const change = finite(row.change) ? ` (${plus(row.change, row.change.toFixed(2))}%)` : "";
  const text = PRICE.format(row.last_price) + change;
  if (element.textContent !== text) element.textContent = text;
}

// Writes the leg's cells whose value changed (most of a row's fields repeat: those cost a comparison,
// not a format); `previous` is its last price before this frame's row.
function renderLeg(leg, previous) {
  for (const cell of leg.cellList) {
    const value = cellValue(leg, cell.field);
    if (value === cell.value) continue;
    cell.value = value;
    if (cell.exact !== null) setExact(cell, value);
    const text = show(value, cell.field);
    if (text === cell.text) continue;
    cell.text = text;
    cell.node.nodeValue = text;
    decorate(leg, cell, previous);
  }
}

function oiChange(row) {
  return finite(row.oi) && finite(row.oi_prev) ? row.oi - row.oi_prev : null;
}

function cellValue(leg, field) {
  const row = leg.row;
  if (field === "oi_change") return oiChange(row);
  if (field === "iv") return leg.stale ? row.iv_mid : row.iv;
  return row[field];
}

// OI, its change and volume show compact; their exact figures are the titles.
function setExact(cell, value) {
  const text = !finite(value) ? (cell.field === "oi_change" ? "OI at the previous close unknown" : "")
    : cell.field === "oi_change" ? plus(value, NUMBER.format(value)) : NUMBER.format(value);
  if (text === cell.exact) return;
  cell.exact = text;
  cell.el.title = text;
}

function decorate(leg, cell, previous) {
  const row = leg.row;
  const el = cell.el;
  if (cell.field === "last_price") {
    if (finite(row.last_price) && finite(previous) && row.last_price !== previous) flash(leg, cell, row.last_price > previous);
    const entry = leg.entry;
    if (!entry.priced && finite(row.last_price)) { entry.priced = true; state.rowsDirty = true; }
  } else if (cell.field === "change") {
    setSign(cell, Math.sign(row.change));
  } else if (cell.field === "oi_change") {
    setSign(cell, Math.sign(oiChange(row)));
  } else if (cell.field === "oi" && finite(row.oi)) {
    el.style.setProperty("--oi", row.oi);
    if (row.oi > state.oiScale) setOiScale(row.oi);
  }
}

function setSign(cell, sign) {
  if (cell.sign === sign) return;
  cell.sign = sign;
  cell.el.dataset.sign = sign;
}

// The bars' full width, a round number above the largest OI: changing it restyles every cell of the
// table, so it moves in steps (1, 2, 5 × 10^n), not with every contract traded.
function setOiScale(oi) {
  const power = 10 ** Math.floor(Math.log10(oi));
  state.oiScale = [1, 2, 5, 10].map((m) => m * power).find((step) => step >= oi);
  $("chain").style.setProperty("--oi-max", state.oiScale);
}

// A flash is a class held for FLASH_MS, not a CSS animation: a running animation keeps the renderer
// drawing 60 frames a second (style, paint, commit each time), several times the cost of the deltas.
// It ends in a later frame (one that renders a delta, or one a timer asks for): writes only, no reads.
function flash(leg, cell, up) {
  const name = up ? "flash-up" : "flash-down";
  if (cell.flash !== name) {
    if (cell.flash) cell.el.classList.remove(cell.flash);
    cell.el.classList.add(name);
    cell.flash = name;
  }
  state.flashing.delete(cell);  // re-inserted last: the map stays in order of expiry
  state.flashing.set(cell, state.frameTime + FLASH_MS);
  const move = up ? "up" : "down";
  if (leg.move !== move) { leg.move = move; cell.el.dataset.move = move; }
}

function endFlashes(now) {
  for (const [cell, until] of state.flashing) {
    if (until > now) break;
    cell.el.classList.remove(cell.flash);
    cell.flash = null;
    state.flashing.delete(cell);
  }
  if (state.flashing.size && !state.flashTimer) {
    state.flashTimer = setTimeout(() => {
      state.flashTimer = null;
      requestAnimationFrame(() => endFlashes(performance.now()));
    }, FLASH_MS);
  }
}

// A last price older than STALE_PRICE_S market seconds (the chain's newest data, never the browser's
// clock) is marked, and the IV shown is the one from the bid/ask mid. Returns whether it flipped.
function markAge(leg) {
  const traded = leg.row.last_trade_time;
  const stale = finite(traded) && finite(state.exchangeTime) && state.exchangeTime - traded > STALE_PRICE_S;
  const flipped = stale !== leg.stale;
  if (!flipped && traded === leg.titledAt) return false;
  leg.stale = stale;
  leg.titledAt = traded;
  const at = finite(traded) ? `${istTime(traded)} IST` : "unknown";
  const price = leg.cells.last_price;
  if (price) {
    price.el.title = `last trade ${at}` + (stale ? ` (older than ${STALE_PRICE_S} s: stale)` : "");
    if (flipped) price.el.classList.toggle("stale", stale);
  }
  const iv = leg.cells.iv;
  if (iv) {
    iv.el.title = stale ? `IV from the bid/ask mid: the last trade (${at}) is older than ${STALE_PRICE_S} s`
                        : `IV from the last price (traded ${at})`;
    if (flipped) iv.el.classList.toggle("iv-mid", stale);
  }
  return flipped;
}

function applyMeta(meta) {
  if (finite(meta.forward) && meta.forward !== state.forward) {
    state.forward = meta.forward;
    $("forward").textContent = PRICE.format(meta.forward);
    state.rowsDirty = true;
  }
  if (meta.atm_strike !== undefined && meta.atm_strike !== state.atm) {
    state.atm = meta.atm_strike;
    state.rowsDirty = true;
  }
  if (finite(meta.exchange_time) && meta.exchange_time !== state.exchangeTime) {
    state.exchangeTime = meta.exchange_time;
    for (const leg of state.legs.values()) if (markAge(leg)) renderLeg(leg, leg.row.last_price);
    showDaysToExpiry();
  }
}

function showDaysToExpiry() {
  const [year, month, day] = state.chain.split(":")[1].split("-").map(Number);
  const left = Date.UTC(year, month - 1, day) / 1000 + EXPIRY_CLOSE_UTC_S - state.exchangeTime;
  const days = Math.floor(left / 86_400);
  const hours = Math.floor((left % 86_400) / 3600);
  const text = left <= 0 ? "expired" : days > 0 ? `${days} d ${hours} h` : `${hours} h ${Math.floor((left % 3600) / 60)} m`;
  if ($("dte").textContent !== text) $("dte").textContent = text;
}

// Rows: shown when priced and within the strike range of ATM; ATM marked; ITM legs shaded (calls below
// the forward, puts above). Writes only what changed.
function refreshRows() {
  state.rowsDirty = false;
  const priced = state.strikes.filter((s) => s.priced);
  let centre = 0;
  if (state.atm !== null) {
    for (let i = 1; i < priced.length; i++) {
      if (Math.abs(priced[i].strike - state.atm) < Math.abs(priced[centre].strike - state.atm)) centre = i;
    }
  }
  const visible = new Set(priced.slice(Math.max(0, centre - state.range), centre + state.range + 1));
  const forward = state.forward;
  for (const entry of state.strikes) {
    setRowFlag(entry, "hidden", !visible.has(entry));
    setRowFlag(entry, "atm", entry.strike === state.atm);
    setRowFlag(entry, "itm-ce", forward !== null && entry.strike < forward);
    setRowFlag(entry, "itm-pe", forward !== null && entry.strike > forward);
  }
  limitRanges(Math.max(centre, priced.length - 1 - centre));
  if (state.active && state.active.parentElement.classList.contains("hidden")) setActive(defaultCell(), false);
}

function setRowFlag(entry, name, on) {
  if (entry[name] === on) return;
  entry[name] = on;
  entry.tr.classList.toggle(name, on);
}

// The range control offers what is streamed: a range wider than the strikes on either side shows no more.
function limitRanges(available) {
  let enough = false;
  for (const option of $("strike-range").options) {
    const disabled = enough && Number(option.value) !== state.range;
    if (option.disabled !== disabled) option.disabled = disabled;
    if (Number(option.value) >= available) enough = true;
  }
}

// --- The table, built once per snapshot (or column choice), with a reference to every cell. ---
// Each value sits in a span of fixed size with `contain: strict` (dashboard.css): a changed text lays
// out that span alone, not the table around it.

function acceptSnapshot(snapshot) {
  state.seq = snapshot.seq;
  state.resyncing = false;
  pending.rows = new Map();
  pending.meta = null;
  pending.received = [];
  state.indexToken = snapshot.index_token ?? null;
  state.futureToken = snapshot.future_token ?? null;
  state.lotSize = snapshot.lot_size ?? null;
  $("lot-size").textContent = state.lotSize === null ? "—" : NUMBER.format(state.lotSize);
  state.legs = new Map();
  for (const row of snapshot.rows) {
    state.legs.set(row.instrument_token, { token: row.instrument_token, strike: row.strike, type: row.type,
                                           row, stale: false, titledAt: undefined, move: null });
  }
  state.forward = null;
  state.atm = null;
  state.exchangeTime = null;
  buildTable();
  applyMeta(snapshot);
  refreshRows();
  if (snapshot.as_of) candles.observeTime(Date.parse(snapshot.as_of) / 1000);
  // A fresh snapshot (new chain, reconnect, gap) reloads the chart's history; an option of another
  // chain is no longer on screen, so the chart returns to the underlying.
  chart(state.legs.has(state.charted) ? state.charted : state.indexToken);
  candles.live(snapshot.bars);
  requestAnimationFrame(centreOnAtm);
  scheduleSmile();
}

// Once per snapshot: the only layout this page reads.
function centreOnAtm() {
  const atm = state.strikes.find((s) => s.atm);
  const wrap = $("chain").parentElement;  // scroll the chain only, not the page around it
  if (atm) wrap.scrollTop = atm.tr.offsetTop - (wrap.clientHeight - atm.tr.offsetHeight) / 2;
}

// Calls read outwards from the strike (outermost column first), puts mirror them.
function layoutFields() {
  return [...state.columns.map((f) => ["CE", f]), [null, "strike"], ...[...state.columns].reverse().map((f) => ["PE", f])];
}

function buildTable() {
  const table = $("chain");
  const layout = layoutFields();
  const focused = table.contains(document.activeElement) ? cellKey(document.activeElement) : null;
  const side = state.columns.length;
  table.querySelector("colgroup").innerHTML = layout.map(([, f]) => `<col data-field="${f}">`).join("");
  table.tHead.innerHTML = `<tr class="sides"><th colspan="${side}" scope="colgroup">Calls</th><th></th>` +
    `<th colspan="${side}" scope="colgroup">Puts</th></tr><tr>` +
    layout.map(([, f]) => (f === "strike" ? `<th class="strike" scope="col">Strike</th>`
                                           : `<th data-field="${f}" scope="col">${LABELS[f]}</th>`)).join("") + "</tr>";
  const strikes = [...new Set([...state.legs.values()].map((leg) => leg.strike))].sort((a, b) => a - b);
  const row = (s) => layout.map(([leg, f]) => (leg ? `<td data-leg="${leg}" data-field="${f}" tabindex="-1"><span class="v">—</span></td>`
                                                   : `<td class="strike" tabindex="-1">${s}</td>`)).join("");
  table.tBodies[0].innerHTML = strikes.map((s) => `<tr data-strike="${s}">${row(s)}</tr>`).join("");
  state.strikes = strikes.map((strike, i) => ({ strike, tr: table.tBodies[0].rows[i], CE: null, PE: null,
                                                priced: false, hidden: false, atm: false, "itm-ce": false, "itm-pe": false }));
  const byStrike = new Map(state.strikes.map((entry) => [entry.strike, entry]));
  for (const leg of state.legs.values()) {
    const entry = byStrike.get(leg.strike);
    entry[leg.type] = leg;
    leg.entry = entry;
    leg.cells = {};
    leg.cellList = [];
    leg.tds = [];
  }
  for (const entry of state.strikes) {
    [...entry.tr.cells].forEach((td, i) => {
      const leg = entry[layout[i][0]];
      if (!leg) return;
      const cell = { el: td, node: td.firstChild.firstChild, value: undefined, text: "—", field: layout[i][1],
                     flash: null, sign: null,
                     exact: EXACT_FIELDS.has(layout[i][1]) ? "" : null };
      leg.cells[cell.field] = cell;
      leg.cellList.push(cell);
      leg.tds.push(td);
    });
  }
  state.oiScale = 1;
  table.style.setProperty("--oi-max", 1);
  state.flashing = new Map();
  for (const leg of state.legs.values()) {
    leg.stale = false;  // the new cells carry no marks yet
    leg.titledAt = undefined;
    leg.move = null;
    markAge(leg);
    renderLeg(leg, NaN);
  }
  state.chartedLeg = null;
  highlightCharted();
  state.active = null;
  setActive((focused && findCell(focused)) || defaultCell(), Boolean(focused));
}

// --- Charting a leg, by click or by keyboard. ---

// The candle chart follows one instrument: the underlying's index, or an option whose row was picked.
function chart(token) {
  state.charted = token;
  const leg = state.legs.get(token);
  const underlying = state.chain ? state.chain.split(":")[0] : "";
  $("candles-title").textContent = leg ? `${underlying} ${leg.strike} ${leg.type}` : underlying;
  $("candles-underlying").hidden = !leg;
  $("candles-underlying").textContent = `Back to ${underlying}`;
  highlightCharted();
  candles.show(token);
}

function highlightCharted() {
  const leg = state.legs.get(state.charted) || null;
  if (leg === state.chartedLeg) return;
  if (state.chartedLeg) for (const td of state.chartedLeg.tds) td.classList.remove("charted");
  if (leg) for (const td of leg.tds) td.classList.add("charted");
  state.chartedLeg = leg;
}

function legOf(td) {
  const entry = state.strikes[td.parentElement.sectionRowIndex];
  return entry && td.dataset.leg ? entry[td.dataset.leg] : null;
}

function chartCell(td) {
  const leg = legOf(td);
  if (leg) chart(leg.token);
}

// --- The grid's keyboard: one tab stop, arrows move, Enter charts the leg. ---

function setActive(td, focus) {
  if (!td) return;
  if (state.active && state.active !== td) state.active.tabIndex = -1;
  td.tabIndex = 0;
  state.active = td;
  if (focus) td.focus();
}

function defaultCell() {
  const entry = state.strikes.find((s) => s.atm && !s.hidden) || state.strikes.find((s) => !s.hidden) || state.strikes[0];
  if (!entry) return null;
  return entry.CE?.cells.last_price?.el || entry.tr.cells[0];
}

function cellKey(td) {
  return td.tagName === "TD" ? { strike: td.parentElement.dataset.strike, index: td.cellIndex } : null;
}

function findCell(key) {
  const tr = $("chain").tBodies[0].querySelector(`tr[data-strike="${key.strike}"]`);
  return tr && !tr.classList.contains("hidden") ? tr.cells[Math.min(key.index, tr.cells.length - 1)] : null;
}

function shown(td) {
  return getComputedStyle(td).display !== "none";  // a phone hides columns by CSS
}

function nextRow(tr, step) {
  let next = tr;
  do next = step > 0 ? next.nextElementSibling : next.previousElementSibling;
  while (next && next.classList.contains("hidden"));
  return next;
}

function nextCell(tr, index, step) {
  for (let i = index + step; i >= 0 && i < tr.cells.length; i += step) if (shown(tr.cells[i])) return tr.cells[i];
  return null;
}

function onGridKey(event) {
  const td = event.target.closest("td");
  if (!td) return;
  const tr = td.parentElement;
  let target = null;
  if (event.key === "Enter" || event.key === " ") {
    chartCell(td);
  } else if (event.key === "ArrowUp" || event.key === "ArrowDown") {
    const row = nextRow(tr, event.key === "ArrowDown" ? 1 : -1);
    target = row && row.cells[td.cellIndex];
  } else if (event.key === "ArrowLeft" || event.key === "ArrowRight") {
    target = nextCell(tr, td.cellIndex, event.key === "ArrowRight" ? 1 : -1);
  } else if (event.key === "Home" || event.key === "End") {
    target = event.key === "Home" ? nextCell(tr, -1, 1) : nextCell(tr, tr.cells.length, -1);
  } else {
    return;
  }
  event.preventDefault();
  if (target) setActive(target, true);
}

function onGridClick(event) {
  const td = event.target.closest("td");
  if (!td) return;
  setActive(td, false);
  chartCell(td);
}

// --- Preferences: columns and strike range, stored per user on the server. ---

function buildColumnPicker() {
  $("column-choices").innerHTML = ALL_COLUMNS.map((c) => `<label><input type="checkbox" name="column" value="${c}"` +
    `${state.columns.includes(c) ? " checked" : ""}> ${LABELS[c]}</label>`).join("");
  $("column-choices").addEventListener("change", onColumnsChange);
}

function onColumnsChange(event) {
  const chosen = [...$("column-choices").querySelectorAll("input:checked")].map((input) => input.value);
  if (chosen.length === 0) {
    event.target.checked = true;
    $("column-status").textContent = "keep at least one column";
    return;
  }
  state.columns = ALL_COLUMNS.filter((c) => chosen.includes(c));
  buildTable();
  refreshRows();
  savePreferences();
}

function onRangeChange() {
  state.range = Number($("strike-range").value);
  refreshRows();
  savePreferences();
}

function showRange() {
  const select = $("strike-range");
  if (![...select.options].some((o) => Number(o.value) === state.range)) {
    select.add(new Option(`±${state.range}`, String(state.range)));  // saved through the API, off the steps
  }
  select.value = String(state.range);
}

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

async function savePreferences() {
  const status = $("column-status");
  status.textContent = "saving…";
  const response = await request("/api/v1/dashboard/preferences", {
    method: "PUT",
    headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
    body: JSON.stringify({ columns: state.columns, strike_range: state.range }),
  });
  if (!response) {
    status.textContent = "not saved: the server did not answer";
    return;
  }
  if (response.ok) {
    status.textContent = "saved";
    return;
  }
  const body = await response.json().catch(() => ({}));
  status.textContent = `not saved: HTTP ${response.status} ${JSON.stringify(body)}`;
}

// --- The IV smile: out-of-the-money legs, axes, the forward, values on hover. ---

function scheduleSmile() {
  if (state.smileDue) return;
  state.smileDue = true;
  setTimeout(() => requestAnimationFrame(drawSmile), SMILE_EVERY_MS);
}

const SMILE = { left: 44, right: 464, top: 22, bottom: 224 };

function ticks(low, high, count) {
  const step = (high - low) / (count - 1);
  return Array.from({ length: count }, (_, i) => low + i * step);
}

function drawSmile() {
  state.smileDue = false;
  const points = [];
  for (const leg of state.legs.values()) {
    if (leg.entry?.hidden) continue;
    const otm = state.forward === null ? leg.type === "CE" : (leg.strike >= state.forward) === (leg.type === "CE");
    const iv = leg.stale ? leg.row.iv_mid : leg.row.iv;
    if (otm && finite(iv)) points.push([leg.strike, iv * 100, leg.type]);
  }
  points.sort((a, b) => a[0] - b[0]);
  state.smilePoints = points;
  const svg = $("smile");
  if (points.length < 2) { svg.innerHTML = `<text x="${SMILE.left}" y="120">waiting for prices</text>`; return; }
  const [x0, x1] = [points[0][0], points[points.length - 1][0]];
  const ivs = points.map((p) => p[1]);
  const [y0, y1] = [Math.floor(Math.min(...ivs)), Math.ceil(Math.max(...ivs) + 1e-9)];
  state.smileScale = { x0, x1, y0, y1 };
  const sx = (x) => SMILE.left + ((x - x0) / (x1 - x0)) * (SMILE.right - SMILE.left);
  const sy = (y) => SMILE.bottom - ((y - y0) / (y1 - y0 || 1)) * (SMILE.bottom - SMILE.top);
  const parts = [`<line class="axis" x1="${SMILE.left}" y1="${SMILE.bottom}" x2="${SMILE.right}" y2="${SMILE.bottom}"/>`,
                 `<line class="axis" x1="${SMILE.left}" y1="${SMILE.top}" x2="${SMILE.left}" y2="${SMILE.bottom}"/>`];
  const every = Math.ceil(points.length / 5);  // about five strikes on the axis, each a listed strike
  points.forEach(([x], i) => {
    if (i % every) return;
    const anchor = i === 0 ? "start" : i + every >= points.length ? "end" : "middle";
    parts.push(`<text class="tick" x="${sx(x).toFixed(1)}" y="${SMILE.bottom + 14}" text-anchor="${anchor}">${x}</text>`);
  });
  for (const y of ticks(y0, y1, 5)) {
    parts.push(`<text class="tick" x="${SMILE.left - 4}" y="${(sy(y) + 3).toFixed(1)}" text-anchor="end">${y.toFixed(1)}</text>`,
               `<line class="grid" x1="${SMILE.left}" y1="${sy(y).toFixed(1)}" x2="${SMILE.right}" y2="${sy(y).toFixed(1)}"/>`);
  }
  parts.push(`<text class="tick" x="${SMILE.right}" y="${SMILE.bottom + 30}" text-anchor="end">strike</text>`,
             `<text class="tick" x="4" y="12">IV %</text>`);
  if (finite(state.forward) && state.forward >= x0 && state.forward <= x1) {
    const fx = sx(state.forward).toFixed(1);
    parts.push(`<line class="forward" x1="${fx}" y1="${SMILE.top}" x2="${fx}" y2="${SMILE.bottom}"/>`,
               `<text class="forward-label" x="${fx}" y="${SMILE.top + 10}" text-anchor="middle">ATM ${PRICE.format(state.forward)}</text>`);
  }
  const line = points.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(" ");
  parts.push(`<polyline points="${line}" class="smile-line"/>`);
  for (const [x, y, type] of points) {
    parts.push(`<circle class="smile-point" cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="2.5">` +
               `<title>${x} ${type}: IV ${y.toFixed(2)}%</title></circle>`);
  }
  parts.push(`<circle id="smile-cursor" r="5" cx="-10" cy="-10"/>`);
  svg.innerHTML = parts.join("");
}

function onSmileHover(event) {
  const scale = state.smileScale;
  if (!scale || state.smilePoints.length < 2) return;
  const box = $("smile").getBoundingClientRect();  // a pointer event, not a delta: reading layout is fine here
  const x = ((event.clientX - box.left) / box.width) * 480;
  const strike = scale.x0 + ((x - SMILE.left) / (SMILE.right - SMILE.left)) * (scale.x1 - scale.x0);
  let best = state.smilePoints[0];
  for (const point of state.smilePoints) if (Math.abs(point[0] - strike) < Math.abs(best[0] - strike)) best = point;
  const index = state.smilePoints.indexOf(best);
  const circle = $("smile").querySelectorAll("circle.smile-point")[index];
  const cursor = $("smile-cursor");
  if (circle && cursor) { cursor.setAttribute("cx", circle.getAttribute("cx")); cursor.setAttribute("cy", circle.getAttribute("cy")); }
  $("smile-hover").textContent = `${best[0]} ${best[2]} · IV ${best[1].toFixed(2)}%`;
}

// --- Feed health: one line, details on demand. ---

async function refreshFeeds() {
  const response = await request("/api/v1/feeds");
  if (!response || !response.ok) {
    $("feed-status").textContent = `feeds: no answer${response ? ` (HTTP ${response.status})` : ""}`;
    $("feed-health").dataset.state = "degraded";
    return;
  }
  const { feeds } = await response.json();
  $("feeds").tBodies[0].innerHTML = feeds.map((f) => `<tr data-state="${f.state}"><td>${f.account}</td>` +
    `<td>${f.state}</td><td>${f.subscribed}</td><td>${f.planned}</td>` +
    `<td>${f.last_frame_age_s === null ? "—" : f.last_frame_age_s.toFixed(1) + " s"}</td></tr>`).join("");
  const streaming = feeds.filter((f) => f.state === "streaming").length;
  const lags = state.lagWindow.sort((a, b) => a - b);
  const lag = lags.length ? `${Math.round(lags[Math.floor(lags.length / 2)])} ms` : "—";
  state.lagWindow = [];
  $("feed-status").textContent = `feeds ${streaming}/${feeds.length} streaming · lag ${lag}`;
  $("feed-health").dataset.state = streaming === feeds.length ? "ok" : "degraded";
}

$("underlying").addEventListener("change", loadExpiries);
$("expiry").addEventListener("change", subscribe);
$("strike-range").addEventListener("change", onRangeChange);
$("chain").tBodies[0].addEventListener("click", onGridClick);
$("chain").tBodies[0].addEventListener("keydown", onGridKey);
$("smile").addEventListener("mousemove", onSmileHover);
$("candles-underlying").addEventListener("click", () => chart(state.indexToken));
candles.interval = $("candles-interval").value;  // a reload may restore the select's last choice
$("candles-interval").addEventListener("change", (event) => candles.setInterval(event.target.value));
buildColumnPicker();
showRange();
connect();
loadExpiries();
refreshFeeds();
setInterval(refreshFeeds, 3000);
