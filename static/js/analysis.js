/* Analysis page: draws the server-built plotly specs, sorts the heat-tables, follows a run.
 *
 * Figure specs arrive in <script id="analysis-figures"> (the same JSON as
 * GET /api/analysis/figures); each <div class="an-plot" data-figure="ID"> gets spec ID.
 * Nothing here computes or changes a number.
 */
(function () {
  "use strict";

  const POLL_MS = 5000;
  const figures = JSON.parse(document.getElementById("analysis-figures").textContent);
  const pageConfig = JSON.parse(document.getElementById("analysis-config").textContent);

  // -- plotting ------------------------------------------------------------------------------
  function svgIcon() {
    const icons = (window.Plotly && Plotly.Icons) || {};
    return icons["camera-retro"] || icons.camera;
  }

  function plotConfig(spec) {
    return {
      responsive: true,
      displaylogo: false,
      modeBarButtonsToRemove: ["select2d", "lasso2d", "autoScale2d"],
      toImageButtonOptions: { format: "png", filename: spec.filename, scale: 2 },
      modeBarButtonsToAdd: [{
        name: "downloadSvg",
        title: "Download plot as SVG",
        icon: svgIcon(),
        click: (gd) => Plotly.downloadImage(gd, { format: "svg", filename: spec.filename }),
      }],
    };
  }

  function draw(el, spec) {
    // plotly mutates what it is given; keep the embedded specs pristine
    const copy = JSON.parse(JSON.stringify(spec));
    el.classList.remove("an-plot-error");
    return Plotly.react(el, copy.data, copy.layout, plotConfig(spec)).catch((err) => {
      el.classList.add("an-plot-error");
      el.textContent = "This chart could not be drawn: " + err;
    });
  }

  function drawAll() {
    document.querySelectorAll(".an-plot[data-figure]").forEach((el) => {
      const spec = figures[el.dataset.figure];
      if (spec) draw(el, spec);
    });
  }

  // -- sortable tables -------------------------------------------------------------------------
  function sortValue(cell, numeric) {
    const raw = cell.dataset.sort;
    if (raw === undefined || raw === "" || raw === "None") return null;
    if (numeric) {
      const n = Number(raw);
      return Number.isFinite(n) ? n : null;
    }
    return raw.toLowerCase();
  }

  function sortTable(table, index, th) {
    const numeric = th.classList.contains("num");
    const previous = th.getAttribute("aria-sort");
    // numbers: best (highest) first on the first click; text: A to Z
    let dir = numeric ? "descending" : "ascending";
    if (previous === dir) dir = dir === "ascending" ? "descending" : "ascending";
    table.querySelectorAll("thead th").forEach((other) => other.setAttribute("aria-sort", "none"));
    th.setAttribute("aria-sort", dir);
    const body = table.tBodies[0];
    const rows = Array.from(body.rows);
    const sign = dir === "ascending" ? 1 : -1;
    rows.sort((a, b) => {
      const va = sortValue(a.cells[index], numeric);
      const vb = sortValue(b.cells[index], numeric);
      if (va === null && vb === null) return 0;
      if (va === null) return 1; // missing values last, whichever the direction
      if (vb === null) return -1;
      return va < vb ? -sign : va > vb ? sign : 0;
    });
    rows.forEach((row) => body.appendChild(row));
  }

  function initTables() {
    document.querySelectorAll("table.js-sortable").forEach((table) => {
      Array.from(table.tHead.rows[0].cells).forEach((th, index) => {
        const button = th.querySelector("button");
        if (button) button.addEventListener("click", () => sortTable(table, index, th));
      });
    });
  }

  // -- our runs --------------------------------------------------------------------------------
  const run = {
    id: pageConfig.run ? pageConfig.run.id : null,
    status: pageConfig.run ? pageConfig.run.status : null,
    lastStep: pageConfig.run ? pageConfig.run.last_step : null,
    snapshots: pageConfig.run ? pageConfig.run.snapshots : [],
    timer: null,
  };

  function setSnapshots(snaps, jumpToEnd) {
    const slider = document.getElementById("snap-slider");
    const viewer = document.getElementById("snap-viewer");
    const empty = document.getElementById("snap-empty");
    if (!slider) return;
    const atEnd = Number(slider.value) >= run.snapshots.length - 1;
    run.snapshots = snaps;
    viewer.hidden = snaps.length === 0;
    empty.hidden = snaps.length > 0;
    slider.max = String(Math.max(0, snaps.length - 1));
    if (jumpToEnd || atEnd) slider.value = slider.max;
    showSnapshot();
  }

  function showSnapshot() {
    const slider = document.getElementById("snap-slider");
    const snap = run.snapshots[Number(slider.value)];
    if (!snap) return;
    const img = document.getElementById("snap-img");
    if (img.getAttribute("src") !== snap.url) img.src = snap.url;
    document.getElementById("snap-step").textContent = String(snap.step);
  }

  function setStatus(status) {
    run.status = status;
    const badge = document.getElementById("run-status");
    if (badge) {
      badge.textContent = status;
      badge.className = "an-status an-status-" + status;
    }
  }

  function setFacts(last) {
    const facts = document.getElementById("run-facts");
    if (!facts || !last) return;
    const parts = [];
    if (last.step != null) parts.push("step " + last.step);
    if (last.epoch != null) parts.push("epoch " + last.epoch.toFixed(2));
    if (last.loss != null) parts.push("loss " + last.loss.toFixed(4));
    if (last.images_per_s != null) parts.push(last.images_per_s.toFixed(1) + " img/s");
    facts.textContent = parts.join(" · ");
  }

  function drawRunFigures(specs) {
    Object.values(specs).forEach((spec) => {
      figures[spec.id] = spec;
      const el = document.querySelector('.an-plot[data-figure="' + spec.id + '"]');
      if (el) draw(el, spec);
      const card = document.getElementById(spec.id);
      const title = card && card.querySelector("h3 .an-title");
      if (title) title.textContent = spec.title;
    });
  }

  async function getJSON(url) {
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(url + ": HTTP " + response.status);
    return response.json();
  }

  async function loadRun(id) {
    const body = await getJSON("/api/runs/" + encodeURIComponent(id) + "/figures");
    run.id = id;
    run.lastStep = body.last_step;
    drawRunFigures(body.figures);
    setSnapshots(body.snapshots, true);
    setStatus(body.run.status);
    setFacts(body.run.last_metrics);
    const url = new URL(window.location.href);
    url.searchParams.set("run", id);
    url.hash = "runs";
    history.replaceState(null, "", url);
    schedulePoll();
  }

  function extendRunTraces(rows) {
    ["run-loss", "run-speed"].forEach((figId) => {
      const el = document.querySelector('.an-plot[data-figure="' + figId + '"]');
      if (!el || !el.data) return;
      const update = { x: [], y: [], customdata: [] };
      const indices = [];
      el.data.forEach((trace, i) => {
        const field = trace.meta && trace.meta.field;
        if (!field) return;
        const pts = rows.filter((r) => r[field] !== null && r[field] !== undefined);
        update.x.push(pts.map((r) => r.step));
        update.y.push(pts.map((r) => r[field]));
        update.customdata.push(pts.map((r) => (r.epoch === undefined ? null : r.epoch)));
        indices.push(i);
      });
      if (indices.length) Plotly.extendTraces(el, update, indices);
    });
  }

  async function poll() {
    if (!run.id) return;
    const id = run.id;
    try {
      const since = run.lastStep == null ? "" : "?since_step=" + run.lastStep;
      const body = await getJSON("/api/runs/" + encodeURIComponent(id) + "/metrics" + since);
      if (id !== run.id) return; // the user switched runs meanwhile
      if (body.metrics.length) {
        extendRunTraces(body.metrics);
        run.lastStep = body.last_step;
        setFacts(body.metrics[body.metrics.length - 1]);
      }
      setStatus(body.status);
      const snaps = await getJSON("/api/runs/" + encodeURIComponent(id) + "/snapshots");
      if (id === run.id && snaps.snapshots.length !== run.snapshots.length) {
        setSnapshots(snaps.snapshots, false);
      }
    } catch (err) {
      console.warn("run poll failed", err);
    }
    schedulePoll();
  }

  function schedulePoll() {
    clearTimeout(run.timer);
    if (run.id && run.status === "running") run.timer = setTimeout(poll, POLL_MS);
  }

  function initRuns() {
    const select = document.getElementById("run-select");
    if (select) {
      select.addEventListener("change", () => {
        loadRun(select.value).catch((err) => console.warn("could not load run", err));
      });
    }
    const slider = document.getElementById("snap-slider");
    if (slider) slider.addEventListener("input", showSnapshot);
    schedulePoll();
  }

  function init() {
    if (!window.Plotly) {
      document.querySelectorAll(".an-plot[data-figure]").forEach((el) => {
        el.classList.add("an-plot-error");
        el.textContent = "plotly.js did not load, so the charts cannot be drawn.";
      });
    } else {
      drawAll();
    }
    initTables();
    initRuns();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
