// Feature explorer: embed a dataset (POST /api/features), poll its progress, draw the 2-D map
// with plotly (one trace per class), show a thumbnail on hover, find nearest neighbours.
(() => {
  "use strict";

  const config = JSON.parse(document.getElementById("page-config").textContent);
  const $ = (id) => document.getElementById(id);
  const form = $("embed-form");
  let poll = null;
  let current = null;

  const { api } = window.MAELab;

  function fill(select, values, selected, label = (v) => v) {
    select.replaceChildren(...values.map((v) => {
      const option = new Option(label(v), typeof v === "string" ? v : v.id);
      option.selected = (typeof v === "string" ? v : v.id) === selected;
      return option;
    }));
  }

  fill($("feat-checkpoint"), config.checkpoints, config.default);
  fill($("feat-dataset"), config.datasets, null, (d) => `${d.id} (${d.num_images} images)`);
  fill($("feat-projection"), config.projections, "pca", (p) => p.toUpperCase());
  if (!config.datasets.length) {
    $("embed-status").textContent = "No datasets yet: put a folder of images under a data root (MAE_DATA_ROOTS).";
    form.querySelector("button").disabled = true;
  }

  function params() {
    const data = new FormData(form);
    return { checkpoint: data.get("checkpoint"), dataset: data.get("dataset"), pool: data.get("pool"),
             projection: data.get("projection") };
  }

  function showProgress(state) {
    const box = $("embed-progress");
    box.hidden = state.state !== "computing";
    if (state.state === "computing") {
      box.querySelector("progress").value = state.total ? state.done / state.total : 0;
      box.querySelector(".progress-text").textContent = `${state.done} of ${state.total || "?"} images`;
    }
  }

  async function load(p) {
    const query = new URLSearchParams(p).toString();
    const state = await api(`/api/features?${query}`);
    showProgress(state);
    if (state.state === "ready") {
      current = { ...p, map: state };
      draw(state);
      $("embed-status").textContent = `${state.num_images} images, ${state.dim}-d features (${state.features}).`;
      return;
    }
    if (state.state === "failed") {
      $("embed-status").textContent = `Embedding failed: ${state.error}`;
      return;
    }
    poll = setTimeout(() => load(p).catch(report), 500);
  }

  function draw(map) {
    const groups = new Map();
    for (const point of map.points) {
      const name = point.class ?? "images";
      if (!groups.has(name)) groups.set(name, []);
      groups.get(name).push(point);
    }
    const traces = [...groups.entries()].map(([name, points]) => ({
      type: "scattergl", mode: "markers", name,
      x: points.map((p) => p.x), y: points.map((p) => p.y),
      customdata: points.map((p) => [p.index, p.file]),
      hovertemplate: "%{customdata[1]}<extra>%{fullData.name}</extra>",
      marker: { size: 7, opacity: 0.85 },
    }));
    const proj = map.projection;
    const axis = (i) => proj.method === "pca"
      ? `PC${i + 1} (${(100 * proj.explained_variance[i]).toFixed(1)}% of variance)` : `UMAP ${i + 1}`;
    const el = $("scatter");
    window.Plotly.react(el, traces, {
      margin: { t: 10, r: 10, b: 50, l: 60 }, height: 480, showlegend: groups.size > 1,
      xaxis: { title: { text: axis(0) }, zeroline: false }, yaxis: { title: { text: axis(1) }, zeroline: false },
    }, { responsive: true, displaylogo: false });
    el.dataset.points = String(map.points.length);
    $("map-caption").textContent = map.classes.length
      ? `Coloured by class (${map.classes.length} classes). Hover a point to see its image.`
      : "The dataset has no class sub-folders, so points are not coloured. Hover a point to see its image.";
    el.removeAllListeners?.("plotly_hover");
    el.on("plotly_hover", (event) => {
      const point = event.points[0];
      const thumb = $("hover-thumb");
      thumb.src = `/api/features/thumbnail?dataset=${encodeURIComponent(current.dataset)}&index=${point.customdata[0]}`;
      thumb.alt = point.customdata[1];
      thumb.style.left = `${event.event.clientX + 14}px`;
      thumb.style.top = `${event.event.clientY + 14}px`;
      thumb.hidden = false;
    });
    el.on("plotly_unhover", () => { $("hover-thumb").hidden = true; });
  }

  function report(err) {
    $("embed-status").textContent = err.message;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearTimeout(poll);
    const p = params();
    $("embed-status").textContent = "Embedding…";
    try {
      await api("/api/features", { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ checkpoint: p.checkpoint, dataset: p.dataset, pool: p.pool }) });
      await load(p);
    } catch (err) {
      report(err);
    }
  });

  $("nn-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const status = $("nn-status");
    if (!current) {
      status.textContent = "Embed a dataset first.";
      return;
    }
    const data = new FormData(event.currentTarget);
    data.append("checkpoint", current.checkpoint);
    data.append("dataset", current.dataset);
    data.append("pool", current.pool);
    status.textContent = "Searching…";
    try {
      const body = await api("/api/features/neighbours", { method: "POST", body: data });
      $("nn-results").replaceChildren(...body.neighbours.map((n) => {
        const item = document.createElement("li");
        const img = new Image();
        img.src = n.thumbnail;
        img.alt = n.file;
        const caption = document.createElement("span");
        caption.textContent = `${n.similarity.toFixed(3)}${n.class ? ` · ${n.class}` : ""}`;
        item.append(img, caption);
        return item;
      }));
      status.textContent = `The ${body.neighbours.length} most similar images (cosine similarity of ${body.pool} features).`;
    } catch (err) {
      status.textContent = err.message;
    }
  });
})();
