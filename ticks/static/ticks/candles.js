// Candles of one instrument under the chain: history from /api/v1/bars, the forming bar from the stream.
// Drawn by the vendored TradingView Lightweight Charts (global `LightweightCharts`).
"use strict";

// The library labels its axis in UTC. Every time handed to it is shifted by IST's offset, so the UTC
// labels it prints read as IST wall-clock time (the library's own advice for a fixed time zone; India
// has no daylight saving, so one constant is exact).
const IST_OFFSET_S = 19_800;
const DAY_S = 86_400;
const SESSION_OPEN_S = 9 * 3600 + 15 * 60;  // 09:15 IST: Kite aligns intraday candles here
const INTERVAL_MINUTES = { minute: 1, "3minute": 3, "5minute": 5, "10minute": 10, "15minute": 15,
                           "30minute": 30, "60minute": 60, day: 1440 };
// Calendar days of history before the market day's midnight; a window this short that holds fewer
// than MIN_BARS widens by WIDEN_DAYS, which reaches back over a weekend or holiday to the previous session.
const LOOKBACK_DAYS = { minute: 0, "3minute": 0, "5minute": 0, "10minute": 0, "15minute": 3,
                        "30minute": 6, "60minute": 12, day: 365 };
const MIN_BARS = 60;
const WIDEN_DAYS = 5;
const MAX_PAGES = 40;  // a runaway `next` chain stops here

// --- The wire formats, one function each, so a renamed field is a one-line fix. ---

// One result of GET /api/v1/bars ("date", the bar's first instant, is ISO with +05:30).
function barFromApi(result) {
  return { start: Date.parse(result.date) / 1000, open: Number(result.open), high: Number(result.high),
           low: Number(result.low), close: Number(result.close), volume: Number(result.volume ?? 0) };
}

// One entry of a stream message's `bars`: [start_epoch_seconds, open, high, low, close, volume].
function barFromStream([start, open, high, low, close, volume]) {
  return { start, open, high, low, close, volume: volume ?? 0 };
}

// --- Kite's bucketing, on epoch seconds. ---

function istMidnight(epoch) {
  return Math.floor((epoch + IST_OFFSET_S) / DAY_S) * DAY_S - IST_OFFSET_S;
}

// The start of the `interval` candle holding the minute that starts at `epoch`: days start at IST
// midnight (as Kite's day candles do); intraday candles count whole intervals from 09:15 IST, so a
// 15-minute candle starts 09:15, 09:30, … and a 60-minute one 09:15, 10:15, … (the day's last is short).
function bucketStart(epoch, interval) {
  const minutes = INTERVAL_MINUTES[interval];
  const midnight = istMidnight(epoch);
  if (minutes >= 1440) return midnight;
  const open = midnight + SESSION_OPEN_S;
  return open + Math.floor((epoch - open) / (minutes * 60)) * minutes * 60;
}

// Fold the newest forming 1-minute bar into the candle of `interval` it belongs to. `current` is that
// candle so far (null when none) with the minute last folded into it (`minute`, `minuteVolume`): the
// stream repeats the same minute as it grows, so its volume replaces its own earlier share instead of
// adding to it. Returns the new candle, or null for a minute older than `current` (a stale message).
function foldMinute(current, bar, interval) {
  const start = bucketStart(bar.start, interval);
  if (current && start < current.start) return null;
  if (!current || start > current.start || interval === "minute") {
    return { ...bar, start, minute: bar.start, minuteVolume: bar.volume };
  }
  if (current.minute !== null && bar.start < current.minute) return null;
  const sameMinute = current.minute === bar.start;
  return {
    start, open: current.open, high: Math.max(current.high, bar.high), low: Math.min(current.low, bar.low),
    close: bar.close, volume: current.volume - (sameMinute ? current.minuteVolume : 0) + bar.volume,
    minute: bar.start, minuteVolume: bar.volume,
  };
}

function istIso(epoch) {
  return new Date((epoch + IST_OFFSET_S) * 1000).toISOString().slice(0, 19) + "+05:30";
}

// --- The chart. ---

class CandleChart {
  // `element` holds the canvas; its data-* attributes mirror what is drawn (read by the browser test).
  constructor(element, { onStatus }) {
    this.element = element;
    this.onStatus = onStatus;
    this.token = null;
    this.interval = "minute";
    this.marketNow = null;  // newest market (exchange) time seen on the stream, epoch seconds
    this.current = null;    // the newest candle, as foldMinute keeps it
    this.pending = null;    // the charted token's newest forming minute, kept while history loads
    this.generation = 0;    // a history response for an older token or interval is dropped
    this.chart = LightweightCharts.createChart(element, {
      autoSize: true,
      layout: { background: { color: "#172029" }, textColor: "#8b98a5", attributionLogo: true },
      grid: { vertLines: { color: "#1f2a35" }, horzLines: { color: "#1f2a35" } },
      // fixLeftEdge: a short history (the session has just opened) starts at the left, not floating right.
      timeScale: { timeVisible: true, secondsVisible: false, borderColor: "#2a3642", fixLeftEdge: true,
                   barSpacing: 8, rightOffset: 4 },
      rightPriceScale: { borderColor: "#2a3642" },
    });
    this.candles = this.chart.addSeries(LightweightCharts.CandlestickSeries, {
      upColor: "#3fb950", downColor: "#f85149", wickUpColor: "#3fb950", wickDownColor: "#f85149",
      borderVisible: false,
    });
    this.volume = this.chart.addSeries(LightweightCharts.HistogramSeries, {
      priceScaleId: "volume", priceFormat: { type: "volume" }, color: "#2f4a66", lastValueVisible: false,
      priceLineVisible: false,
    });
    this.chart.priceScale("volume").applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
  }

  // Chart another instrument (or the same one afresh, e.g. after a reconnect's snapshot).
  show(token) {
    if (token !== this.token) this.pending = null;
    this.token = token;
    this.reload();
  }

  setInterval(interval) {
    this.interval = interval;
    this.reload();
  }

  // A market time from the stream (a forming bar's start, a snapshot's as_of): history waits for one.
  observeTime(epoch) {
    if (!Number.isFinite(epoch)) return;
    const first = this.marketNow === null;
    if (first || epoch > this.marketNow) this.marketNow = epoch;
    if (first && this.token !== null) this.reload();
  }

  // A stream message's `bars` ({token: [start, o, h, l, c, v]}): the charted token's forming minute.
  live(bars) {
    if (!bars) return;
    for (const entry of Object.values(bars)) this.observeTime(entry[0]);
    const entry = bars[this.token];
    if (!entry) return;
    const minute = barFromStream(entry);
    if (!this.pending || minute.start >= this.pending.start) this.pending = minute;
    if (this.element.dataset.state === "ready") this.apply(minute);
  }

  apply(minute) {
    const next = foldMinute(this.current, minute, this.interval);
    if (next === null) return;
    this.current = next;
    this.candles.update(this.point(next));
    this.volume.update({ time: next.start + IST_OFFSET_S, value: next.volume });
    this.mirror();
  }

  point(bar) {
    return { time: bar.start + IST_OFFSET_S, open: bar.open, high: bar.high, low: bar.low, close: bar.close };
  }

  async reload() {
    const generation = ++this.generation;
    const key = `${this.token}:${this.interval}`;
    if (key !== this.element.dataset.key) {  // another series: clear it; the same one stays until replaced
      this.current = null;
      this.candles.setData([]);
      this.volume.setData([]);
      this.element.dataset.key = key;
    }
    this.element.dataset.token = this.token ?? "";
    this.element.dataset.interval = this.interval;
    if (this.token === null || this.marketNow === null) {
      this.setState("waiting", "waiting for the market's time from the stream");
      return;
    }
    this.setState("loading", "loading history");
    const midnight = istMidnight(this.marketNow);
    const to = midnight + DAY_S;
    let from = midnight - LOOKBACK_DAYS[this.interval] * DAY_S;
    let history;
    try {
      history = await this.fetchBars(from, to);
      if (history.length < MIN_BARS && this.interval !== "day") {
        from -= WIDEN_DAYS * DAY_S;  // today's session has just begun: show the previous one too
        history = await this.fetchBars(from, to);
      }
    } catch (error) {
      if (generation === this.generation) this.setState("error", String(error.message || error));
      return;
    }
    if (generation !== this.generation) return;
    history.sort((a, b) => a.start - b.start);
    this.candles.setData(history.map((bar) => this.point(bar)));
    this.volume.setData(history.map((bar) => ({ time: bar.start + IST_OFFSET_S, value: bar.volume })));
    const last = history[history.length - 1];
    this.current = last ? { ...last, minute: null, minuteVolume: 0 } : null;
    Object.assign(this.element.dataset, { history: history.length, from: istIso(from), to: istIso(to),
                                          loads: Number(this.element.dataset.loads ?? 0) + 1 });
    this.setState("ready", history.length ? "" : "no history yet: live candles only");
    if (this.pending) this.apply(this.pending);
    this.mirror();
    this.chart.timeScale().scrollToRealTime();
  }

  async fetchBars(from, to) {
    const query = new URLSearchParams({ instrument: this.token, interval: this.interval, from: istIso(from),
                                        to: istIso(to), limit: 1000 });
    let url = `/api/v1/bars?${query}`;
    const bars = [];
    for (let page = 0; url && page < MAX_PAGES; page++) {
      const response = await fetch(url, { headers: { Accept: "application/json" } });
      if (!response.ok) {
        const body = await response.json().catch(() => ({}));
        throw new Error(`bars: HTTP ${response.status} ${JSON.stringify(body)}`);
      }
      const { results, next } = await response.json();
      bars.push(...results.map(barFromApi));
      url = next;
    }
    return bars;
  }

  setState(state, text) {
    this.element.dataset.state = state;
    this.onStatus(text);
  }

  // The candles drawn, oldest first, on epoch seconds (the browser test compares them with the API's).
  drawn() {
    return this.candles.data().map((c) => ({ start: c.time - IST_OFFSET_S, open: c.open, high: c.high,
                                            low: c.low, close: c.close }));
  }

  // What is drawn, as attributes: the number of candles and the newest one.
  mirror() {
    const data = this.candles.data();
    const last = data[data.length - 1];
    this.element.dataset.count = data.length;
    this.element.dataset.last = last ? JSON.stringify({ start: last.time - IST_OFFSET_S, open: last.open,
                                                        high: last.high, low: last.low, close: last.close }) : "";
  }
}

window.Candles = { CandleChart, bucketStart, foldMinute, INTERVAL_MINUTES };
