// The result of an evaluation job (k-NN, linear probe, fine-tuning) on its job page: top-1
// (top-5 past five classes), the confusion matrix, per-class accuracy and the per-epoch curves.
// Reads GET /api/jobs/<id>/result (eval.json, format mae-lab-eval/1) and polls until it exists.
(function () {
  "use strict";
  const card = document.getElementById("eval-results");
  if (!card) return;

  const { el } = window.MAELab;
  const pct = (v) => (v === null || v === undefined ? "–" : `${v.toFixed(1)}%`);

  function render(r) {
    document.getElementById("eval-note").textContent =
      `${r.protocol} · ${r.schedule} · ${r.num_train} train / ${r.num_val} held-out images`;
    const top = [["Top-1", pct(r.top1)]];
    if (r.top5 !== undefined) top.push(["Top-5", pct(r.top5)]);
    top.push(["Classes", String((r.classes || []).length)]);
    if (r.best) top.push(["Best top-1", `${pct(r.best.top1)} (epoch ${r.best.epoch})`]);
    document.getElementById("eval-top").replaceChildren(...top.map(([k, v]) =>
      el("div", {}, el("dt", { text: k }), el("dd", { text: v, "data-metric": k }))));

    const classes = r.classes || [];
    const maxCell = Math.max(1, ...r.confusion.flat());
    const head = el("tr", {}, el("th", { text: "" }), ...classes.map((c) => el("th", { text: c, scope: "col" })));
    const rows = r.confusion.map((row, i) => el("tr", {}, el("th", { text: classes[i], scope: "row" }),
      ...row.map((n, j) => el("td", {
        text: String(n), class: i === j ? "diag" : null,
        style: `background: rgba(${i === j ? "40,140,80" : "200,60,60"}, ${(0.08 + 0.6 * n / maxCell).toFixed(2)})`,
      }))));
    document.getElementById("eval-confusion").replaceChildren(head, ...rows);
    document.getElementById("eval-per-class").replaceChildren(
      el("tr", {}, el("th", { text: "class" }), el("th", { text: "images" }), el("th", { text: "accuracy" })),
      ...r.per_class.map((c) => el("tr", {}, el("td", { text: c.class }), el("td", { text: String(c.n) }),
        el("td", { text: pct(c.accuracy) }))));

    const chart = document.getElementById("eval-curves");
    const curves = r.curves || [];
    if (!curves.length || !window.Plotly) { chart.hidden = true; return; }
    const epochs = curves.map((c) => c.epoch);
    const traces = [{ x: epochs, y: curves.map((c) => c.loss), name: "train loss", mode: "lines+markers" }];
    if (curves.some((c) => c.top1 !== undefined)) {
      traces.push({ x: epochs, y: curves.map((c) => c.top1), name: "val top-1 (%)", yaxis: "y2", mode: "lines+markers" });
    }
    window.Plotly.newPlot(chart, traces, {
      margin: { t: 20, r: 50, b: 40, l: 50 }, xaxis: { title: "epoch" }, yaxis: { title: "loss" },
      yaxis2: { title: "top-1 %", overlaying: "y", side: "right" }, legend: { orientation: "h" },
    }, { displayModeBar: false, responsive: true });
  }

  async function poll() {
    try {
      const resp = await fetch(card.dataset.result, { headers: { Accept: "application/json" } });
      if (resp.ok) { render(await resp.json()); return; }
    } catch (err) { /* the server restarts: try again */ }
    setTimeout(poll, 2000);
  }
  poll();
})();
