// The live option chain: one WebSocket (/ws/stream/), snapshot then numbered deltas.
"use strict";

// Calls read outwards from the strike, puts mirror them.
const LEG_FIELDS = ["vega", "theta", "gamma", "delta", "iv", "oi", "volume", "bid", "ask", "change", "last_price"];
const FORMAT = {
  last_price: (v) => v.toFixed(2), bid: (v) => v.toFixed(2), ask: (v) => v.toFixed(2),
  oi: (v) => v.toLocaleString("en-IN"), volume: (v) => v.toLocaleString("en-IN"),
  iv: (v) => (v * 100).toFixed(2), delta: (v) => v.toFixed(3), gamma: (v) => v.toFixed(5),
  theta: (v) => v.toFixed(2), vega: (v) => v.toFixed(2), change: (v) => `${v >= 0 ? "+" : ""}${v.toFixed(2)}`,
};

const state = { ws: null, chain: null, seq: 0, legs: new Map(), atm: null, forward: null,
                indexToken: null, charted: null, retry: 0, smileDue: false };
const $ = (id) => document.getElementById(id);
const candles = new Candles.CandleChart($("candles"), { onStatus: (text) => { $("candles-status").textContent = text; } });

function show(value, field) {
  return value === null || value === undefined || Number.isNaN(value) ? "—" : FORMAT[field](value);
}

function setConnection(text, kind) {
  const badge = $("connection");
  badge.textContent = text;
  badge.dataset.state = kind;
}

async function loadExpiries() {
  const underlying = $("underlying").value;
  const response = await fetch(`/api/v1/chains/${encodeURIComponent(underlying)}/expiries`);
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
  if (message.type === "snapshot") return renderSnapshot(message);
  if (message.type === "error") return console.warn("stream error", message);
  if (message.type !== "delta") return;
  if (message.seq !== state.seq + 1) {  // a gap: start again from a fresh snapshot
    send({ action: "snapshot", chain: state.chain });
    return;
  }
  state.seq = message.seq;
  candles.live(message.bars);
  for (const row of message.rows) applyRow(row);
  for (const [chain, meta] of Object.entries(message.chains || {})) {
    if (chain === state.chain) applyMeta(meta);
  }
  scheduleSmile();
}

function renderSnapshot(snapshot) {
  state.seq = snapshot.seq;
  state.legs = new Map();
  state.atm = null;  // the rows are new: mark the ATM row again even if the strike has not moved
  state.indexToken = snapshot.index_token;
  const strikes = [...new Set(snapshot.rows.map((r) => r.strike))].sort((a, b) => a - b);
  const body = $("chain").tBodies[0];
  body.innerHTML = "";
  for (const strike of strikes) body.appendChild(strikeRow(strike));
  for (const row of snapshot.rows) {
    state.legs.set(row.instrument_token, { strike: row.strike, type: row.type, row: {} });
    applyRow(row, false);
  }
  applyMeta(snapshot);
  scheduleSmile();
  if (snapshot.as_of) candles.observeTime(Date.parse(snapshot.as_of) / 1000);
  // A fresh snapshot (new chain, reconnect, gap) reloads the chart's history; an option of another
  // chain is no longer on screen, so the chart returns to the underlying.
  chart(state.legs.has(state.charted) ? state.charted : state.indexToken);
  candles.live(snapshot.bars);
  const atm = body.querySelector("tr.atm");
  const wrap = $("chain").parentElement;  // scroll the chain only, not the page around it
  if (atm) wrap.scrollTop = atm.offsetTop - (wrap.clientHeight - atm.offsetHeight) / 2;
}

function strikeRow(strike) {
  const tr = document.createElement("tr");
  tr.dataset.strike = strike;
  tr.className = "empty";  // shown once a leg has a price: strikes outside the watched window stay hidden
  const cells = (type) => LEG_FIELDS.map((f) => `<td data-leg="${type}" data-field="${f}">—</td>`);
  tr.innerHTML = [...cells("CE"), `<td class="strike">${strike}</td>`, ...cells("PE").reverse()].join("");
  return tr;
}

function applyRow(row, flash = true) {
  if (row.instrument_token === state.indexToken) {
    $("spot").textContent = `Spot ${show(row.last_price, "last_price")}` +
      (row.change === undefined ? "" : ` (${row.change >= 0 ? "+" : ""}${row.change.toFixed(2)}%)`);
    return;
  }
  const leg = state.legs.get(row.instrument_token);
  if (!leg) return;
  Object.assign(leg.row, row);
  const tr = $("chain").querySelector(`tr[data-strike="${leg.strike}"]`);
  if (Number.isFinite(row.last_price)) tr.classList.remove("empty");
  for (const field of LEG_FIELDS) {
    if (!(field in row)) continue;
    const cell = tr.querySelector(`td[data-leg="${leg.type}"][data-field="${field}"]`);
    const text = show(row[field], field);
    if (cell.textContent === text) continue;
    cell.textContent = text;
    if (field === "change") cell.dataset.sign = Math.sign(row.change);
    if (flash) { cell.classList.remove("flash"); void cell.offsetWidth; cell.classList.add("flash"); }
  }
}

// The candle chart follows one instrument: the underlying's index, or an option whose row was clicked.
function chart(token) {
  state.charted = token;
  const leg = state.legs.get(token);
  const underlying = state.chain ? state.chain.split(":")[0] : "";
  $("candles-title").textContent = leg ? `${underlying} ${leg.strike} ${leg.type}` : underlying;
  $("candles-underlying").hidden = !leg;
  $("candles-underlying").textContent = `Back to ${underlying}`;
  for (const cell of $("chain").querySelectorAll("td.charted")) cell.classList.remove("charted");
  if (leg) {
    const tr = $("chain").querySelector(`tr[data-strike="${leg.strike}"]`);
    for (const cell of tr.querySelectorAll(`td[data-leg="${leg.type}"]`)) cell.classList.add("charted");
  }
  candles.show(token);
}

function chartClickedLeg(event) {
  const cell = event.target.closest("td[data-leg]");
  if (!cell) return;
  const strike = Number(cell.parentElement.dataset.strike);
  for (const [token, leg] of state.legs) {
    if (leg.strike === strike && leg.type === cell.dataset.leg) return chart(token);
  }
}

function applyMeta(meta) {
  if (meta.forward !== undefined && meta.forward !== null) {
    state.forward = meta.forward;
    $("forward").textContent = `Fwd ${meta.forward.toFixed(2)}`;
  }
  if (meta.atm_strike !== undefined && meta.atm_strike !== state.atm) {
    state.atm = meta.atm_strike;
    for (const tr of $("chain").tBodies[0].rows) tr.classList.toggle("atm", Number(tr.dataset.strike) === state.atm);
  }
}

function scheduleSmile() {
  if (state.smileDue) return;
  state.smileDue = true;
  setTimeout(drawSmile, 500);
}

function drawSmile() {
  state.smileDue = false;
  const points = [];
  for (const leg of state.legs.values()) {
    const otm = state.forward === null ? leg.type === "CE" : (leg.strike >= state.forward) === (leg.type === "CE");
    if (otm && Number.isFinite(leg.row.iv)) points.push([leg.strike, leg.row.iv * 100]);
  }
  points.sort((a, b) => a[0] - b[0]);
  const svg = $("smile");
  if (points.length < 2) { svg.innerHTML = `<text x="10" y="60">waiting for prices</text>`; return; }
  const [x0, x1] = [points[0][0], points[points.length - 1][0]];
  const ivs = points.map((p) => p[1]);
  const [y0, y1] = [Math.min(...ivs), Math.max(...ivs) + 1e-9];
  const sx = (x) => 30 + ((x - x0) / (x1 - x0)) * 280;
  const sy = (y) => 108 - ((y - y0) / (y1 - y0)) * 96;
  const line = points.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(" ");
  svg.innerHTML = `<polyline points="${line}" class="smile-line"/>` +
    `<text x="2" y="12">${y1.toFixed(1)}%</text><text x="2" y="117">${y0.toFixed(1)}%</text>`;
}

async function refreshFeeds() {
  const response = await fetch("/api/v1/feeds");
  if (!response.ok) return;
  const { feeds } = await response.json();
  $("feeds").tBodies[0].innerHTML = feeds.map((f) => `<tr data-state="${f.state}"><td>${f.account}</td>` +
    `<td>${f.state}</td><td>${f.subscribed}</td><td>${f.planned}</td>` +
    `<td>${f.last_frame_age_s === null ? "—" : f.last_frame_age_s.toFixed(1) + " s"}</td></tr>`).join("");
}

$("underlying").addEventListener("change", loadExpiries);
$("expiry").addEventListener("change", subscribe);
$("chain").tBodies[0].addEventListener("click", chartClickedLeg);
$("candles-underlying").addEventListener("click", () => chart(state.indexToken));
candles.interval = $("candles-interval").value;  // a reload may restore the select's last choice
$("candles-interval").addEventListener("change", (event) => candles.setInterval(event.target.value));
connect();
loadExpiries();
refreshFeeds();
setInterval(refreshFeeds, 3000);
