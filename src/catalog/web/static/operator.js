// The operator page's charts: poll /operator/figures every second, keep five minutes,
// draw each series as a line. Totals from the server become rates by difference.
"use strict";
(() => {
  const root = document.getElementById("operator");
  if (!root) return;
  const KEEP = 300;
  const samples = [];
  const headers = root.dataset.token ? { Authorization: `Bearer ${root.dataset.token}` } : {};
  const state = document.getElementById("state");

  // A counter's rate between two samples; a restarted process starts again from 0.
  const rate = (key) => (now, before) => {
    const seconds = now.time - before.time;
    const change = now[key] >= before[key] ? now[key] - before[key] : now[key];
    return seconds > 0 ? change / seconds : 0;
  };
  // The 95th percentile of the requests answered between two samples, in ms.
  const p95 = (now, before) => {
    const total = now.latency_count - before.latency_count;
    if (total <= 0) return null;
    const earlier = new Map(before.latency_buckets.map(([bound, count]) => [bound, count]));
    for (const [bound, count] of now.latency_buckets) {
      if (count - (earlier.get(bound) || 0) >= 0.95 * total) return bound * 1000;
    }
    const last = now.latency_buckets[now.latency_buckets.length - 1];
    return last ? last[0] * 1000 : null;
  };
  const gauge = (key) => (now) => now[key];
  const SERIES = {
    checked_out: gauge("checked_out"),
    waiting: gauge("waiting"),
    overflow: gauge("overflow"),
    unavailable: rate("unavailable"),
    timeouts: rate("timeouts"),
    requests: rate("requests"),
    client_errors: rate("client_errors"),
    errors: rate("errors"),
    p95: p95,
    connects: rate("connects"),
  };

  const values = (key) => {
    const out = [];
    for (let i = 1; i < samples.length; i++) out.push(SERIES[key](samples[i], samples[i - 1]));
    return out;
  };
  const shown = (value) =>
    value === null ? "–" : value >= 100 || Number.isInteger(value) ? String(Math.round(value)) : value.toFixed(1);

  const SVG = "http://www.w3.org/2000/svg";
  function draw(figure) {
    const key = figure.dataset.series;
    const points = values(key);
    const svg = figure.querySelector("svg");
    const top = Math.max(1, ...points.filter((v) => v !== null));
    let line = svg.querySelector("polyline");
    if (!line) {
      line = document.createElementNS(SVG, "polyline");
      svg.appendChild(line);
    }
    const step = 300 / (KEEP - 1);
    const offset = KEEP - points.length;
    line.setAttribute(
      "points",
      points
        .map((v, i) => (v === null ? null : `${((offset + i) * step).toFixed(1)},${(78 - (v / top) * 74).toFixed(1)}`))
        .filter(Boolean)
        .join(" ")
    );
    figure.classList.toggle("alarm", (key === "unavailable" || key === "timeouts" || key === "waiting" || key === "errors") && points.slice(-10).some((v) => v > 0));
    figure.querySelector("[data-now]").textContent = shown(points.length ? points[points.length - 1] : null);
    figure.querySelector("[data-max]").textContent = shown(top);
  }

  function tell(text, kind) {
    state.textContent = text;
    state.classList.toggle("error", kind === "error");
    state.classList.toggle("good", kind === "good");
  }

  function story() {
    const refused = values("unavailable");
    const recent = refused.slice(-10).reduce((sum, v) => sum + v, 0);
    const last = refused.map((v, i) => (v > 0 ? i : -1)).reduce((a, b) => Math.max(a, b), -1);
    if (recent > 0) {
      tell("Refusing requests: 503 answers in the last 10 seconds (the pool is exhausted or the database is unavailable).", "error");
    } else if (last >= 0) {
      tell(`Recovered: the last 503 was ${refused.length - 1 - last} seconds ago; serving normally since.`, "good");
    } else {
      tell("Serving normally: no 503 in the last five minutes.", "good");
    }
  }

  async function poll() {
    try {
      const answer = await fetch(root.dataset.figures, { headers, cache: "no-store" });
      if (!answer.ok) {
        tell(answer.status === 401 ? "This page's token has expired: reload the page." : `The figures answered ${answer.status}.`, "error");
        return;
      }
      const now = await answer.json();
      samples.push(now);
      if (samples.length > KEEP + 1) samples.shift();
      for (const figure of root.querySelectorAll("figure[data-series]")) draw(figure);
      for (const total of root.querySelectorAll("[data-total]")) total.textContent = shown(now[total.dataset.total]);
      if (samples.length > 1) story();
    } catch (error) {
      tell("The service does not answer.", "error");
    }
  }
  // The last five minutes as the server kept them: a page opened during an incident
  // shows what led to it. Then a new sample every second.
  async function start() {
    try {
      const answer = await fetch(root.dataset.history, { headers, cache: "no-store" });
      if (answer.ok) samples.push(...(await answer.json()).slice(-KEEP));
    } catch (error) {
      // No history: the charts start from now.
    }
    await poll();
    setInterval(poll, 1000);
  }
  start();
})();
