// Compare tab of the Reconstruct page: the current image and mask settings through 2-4
// checkpoints (POST /reconstruct/compare), one row per model with its masked-patch PSNR.
// reconstruct.js owns the image, the mask controls and the tabs; it calls maeCompare.render.
(() => {
  "use strict";

  const MIN = 2;
  const MAX = 4;
  const PANELS = [
    ["masked", "Masked"],
    ["reconstruction", "Reconstruction"],
    ["pasted", "Reconstruction + visible"],
  ];
  const box = document.getElementById("compare-models");
  const rows = document.getElementById("compare-rows");
  const hint = document.getElementById("compare-hint");
  if (!box) return;

  function chosen() {
    return Array.from(box.querySelectorAll("input:checked"), (input) => input.value);
  }

  // At most MAX boxes can be ticked; the others are disabled until one is cleared.
  function limit() {
    const full = chosen().length >= MAX;
    box.querySelectorAll("input").forEach((input) => {
      input.disabled = input.dataset.usable !== "true" || (full && !input.checked);
    });
    const n = chosen().length;
    hint.textContent = n < MIN ? `Tick ${MIN}–${MAX} checkpoints to compare (${n} ticked).` : "";
  }

  // Checkboxes from GET /api/models (so a model downloaded a moment ago is offered): the
  // default and the checkpoint picked in the sidebar are ticked to start with.
  async function loadModels() {
    const resp = await fetch("/api/models", { headers: { Accept: "application/json" } });
    if (!resp.ok) throw new Error(`could not list the checkpoints (HTTP ${resp.status})`);
    const body = await resp.json();
    const picked = (document.getElementById("model-select") || {}).value;
    const usable = body.models.filter((m) => m.can_reconstruct);
    const start = new Set([body.default_model, picked].filter((id) => usable.some((m) => m.id === id)));
    for (const m of usable) if (start.size < MIN) start.add(m.id);
    for (const m of body.models) {
      const id = `compare-${m.id}`;
      const input = Object.assign(document.createElement("input"), { type: "checkbox", id, value: m.id });
      input.checked = start.has(m.id);
      input.dataset.usable = String(m.can_reconstruct);
      const label = document.createElement("label");
      label.htmlFor = id;
      label.textContent = m.id + (m.default ? " (default)" : "") + (m.can_reconstruct ? "" : " (cannot reconstruct)");
      const field = document.createElement("div");
      field.className = "field checkbox";
      field.append(input, label);
      box.append(field);
    }
    limit();
  }

  const ready = loadModels();

  box.addEventListener("change", () => {
    limit();
    document.dispatchEvent(new CustomEvent("mae:compare-models"));
  });

  function buildRow(item, grid) {
    const row = document.createElement("div");
    row.className = "fig-row compare-row";
    row.dataset.model = item.model;
    row.style.setProperty("--rows", grid[0]);
    row.style.setProperty("--cols", grid[1]);
    const head = document.createElement("div");
    head.className = "fig-row-head";
    const label = Object.assign(document.createElement("span"), { className: "label", textContent: item.model });
    const psnr = item.metrics.masked_psnr;
    const stats = Object.assign(document.createElement("span"), {
      className: "stats psnr",
      textContent: `masked-patch PSNR ${psnr === null ? "∞" : psnr.toFixed(2)} dB · MSE ${item.metrics.masked_mse.toFixed(1)}`,
    });
    head.append(label, stats);
    const panels = document.createElement("div");
    panels.className = "fig-panels";
    for (const [name, title] of PANELS) {
      const fig = document.createElement("figure");
      fig.className = "fig-panel";
      fig.dataset.panel = name;
      const frame = document.createElement("div");
      frame.className = "frame";
      const img = Object.assign(document.createElement("img"), {
        src: `data:image/png;base64,${item.panels[name]}`, alt: `${title}: ${item.model}`, width: 224, height: 224,
      });
      frame.append(img);
      fig.append(frame, Object.assign(document.createElement("figcaption"), { textContent: title }));
      panels.append(fig);
    }
    row.append(head, panels);
    return row;
  }

  // inputs: { image, imageName, resize, params: { ratio, strategy, seed } }
  async function render(inputs, signal, isCurrent) {
    await ready;
    const ids = chosen();
    if (ids.length < MIN) {
      rows.replaceChildren();
      return;
    }
    const form = new FormData();
    form.append("image", inputs.image, inputs.imageName);
    ids.forEach((id) => form.append("model", id));
    form.append("resize", inputs.resize);
    form.append("mask_ratio", String(inputs.params.ratio));
    form.append("strategy", inputs.params.strategy);
    form.append("seed", String(inputs.params.seed));
    const resp = await fetch("/reconstruct/compare", {
      method: "POST", body: form, signal, headers: { Accept: "application/json" },
    });
    const body = await resp.json().catch(() => null);
    if (!resp.ok) throw new Error((body && body.message) || `compare failed (HTTP ${resp.status})`);
    if (!isCurrent()) return;
    rows.replaceChildren(...body.rows.map((item) => buildRow(item, body.grid)));
  }

  window.maeCompare = { render };
})();
