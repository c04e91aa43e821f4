// Reconstruct page: pick an image, set the mask, see the MAE's Figure 4 panels.
// Plain JS, no build step. Talks only to this server (POST /reconstruct, GET /api/ready).
(() => {
  "use strict";

  const config = JSON.parse(document.getElementById("page-config").textContent);
  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

  const PANELS = [
    ["original", "Original"],
    ["masked", "Masked"],
    ["reconstruction", "Reconstruction"],
    ["pasted", "Reconstruction + visible"],
  ];
  const SWEEP_RATIOS = [0.75, 0.85, 0.95];
  const COMPARE_STRATEGIES = ["random", "block", "grid"];
  const STRATEGY_HELP = {
    random: "Random: patches drawn uniformly without replacement (the paper's default).",
    block: "Block: large rectangles removed together, as in BEiT; harder to fill in.",
    grid: "Grid: keeps one patch of every 2×2 cell, a regular pattern.",
  };
  // The MAE loss covers removed patches only, so nothing trains the decoder's output on visible ones.
  const RECONSTRUCTION_NOTE = "The loss covers removed patches only: visible ones are not fitted.";
  const MAX_SIDE = 1280; // larger photos are downsized in the browser before upload
  const DEBOUNCE_MS = 150;

  const els = {
    fileInput: $("#file-input"),
    dropzone: $("#dropzone"),
    fileInfo: $("#file-info"),
    model: $("#model-select"),
    modelCard: $("#model-card"),
    ratio: $("#ratio"),
    ratioOut: $("#ratio-out"),
    ratioHelp: $("#ratio-help"),
    strategyHelp: $("#strategy-help"),
    seed: $("#seed"),
    newMask: $("#new-mask"),
    resize: $("#resize"),
    showGrid: $("#show-grid"),
    heatAll: $("#heat-all"),
    heatFixed: $("#heat-fixed"),
    showAttention: $("#show-attention"),
    attentionHead: $("#attention-head"),
    attentionControls: $("#attention-controls"),
    busy: $("#busy"),
    download: $("#download"),
    error: $("#error"),
    banner: $("#banner"),
    note: $("#normpix-note"),
    details: $("#single-details"),
    metrics: $("#metrics"),
    editor: $("#mask-editor"),
    customCount: $("#custom-count"),
    customMessage: $("#custom-message"),
    modelBrief: $("#model-brief"),
  };

  const state = {
    image: null, // Blob sent as the `image` field
    imageName: "image.png",
    sample: null, // file name of the bundled sample shown, null for an upload
    ratio: Number(els.ratio.value) / 100,
    userRatio: Number(els.ratio.value) / 100, // remembered while grid locks the slider
    strategy: "random",
    seed: randomSeed(),
    model: els.model.value || "",
    resize: els.resize.value,
    view: "single",
    single: null, // last single-view result
    customMask: null, // rows of 0/1 being edited
    customBase: null, // data URL of the image under the editor
  };

  function randomSeed() {
    const a = new Uint32Array(1);
    crypto.getRandomValues(a);
    return a[0] % 1000000;
  }

  const pct = (r) => `${Math.round(r * 100)}%`;
  const fmt = (v, digits = 1) => (v === null || v === undefined ? "n/a" : Number(v).toFixed(digits));

  // ------------------------------------------------------------------ requests
  class ApiError extends Error {
    constructor(message, status, retryAfter) {
      super(message);
      this.status = status;
      this.retryAfter = retryAfter;
    }
  }

  async function reconstruct(params, signal) {
    for (let attempt = 0; ; attempt++) {
      const form = new FormData();
      form.append("image", state.image, state.imageName);
      if (state.model) form.append("model", state.model);
      form.append("resize", state.resize);
      // JPEG q95 panels encode ~25x faster than PNG; the download is drawn from them (the API's
      // Accept: image/png answer is the lossless figure)
      form.append("panel_format", "jpeg");
      if (params.attention) form.append("attention", "true");
      if (params.mask) {
        form.append("mask", JSON.stringify(params.mask));
      } else {
        form.append("mask_ratio", String(params.ratio));
        form.append("strategy", params.strategy);
        form.append("seed", String(params.seed));
      }
      const res = await fetch("/reconstruct", {
        method: "POST", body: form, signal, headers: { Accept: "application/json" },
      });
      let body = null;
      try { body = await res.json(); } catch (_) { /* not JSON */ }
      if (res.ok) return body;
      const retryAfter = Number(res.headers.get("Retry-After") || 0);
      if (res.status === 503 && retryAfter && attempt < 3) {
        setBusy(`server busy, retrying in ${retryAfter} s…`);
        await sleep(retryAfter * 1000, signal);
        continue;
      }
      throw new ApiError((body && body.message) || `request failed (HTTP ${res.status})`, res.status);
    }
  }

  function panelSrc(result, name) {
    return `data:image/${result.panel_format || "png"};base64,${result.panels[name]}`;
  }

  function sleep(ms, signal) {
    return new Promise((resolve, reject) => {
      const t = setTimeout(resolve, ms);
      if (signal) signal.addEventListener("abort", () => { clearTimeout(t); reject(new DOMException("aborted", "AbortError")); });
    });
  }

  // ------------------------------------------------------------------ rendering
  let timer = null;
  let controller = null;
  let generation = 0;

  function scheduleRender(delay = DEBOUNCE_MS) {
    clearTimeout(timer);
    timer = setTimeout(render, delay);
  }

  async function render() {
    writeUrl(); // here, after the debounce: browsers limit replaceState to ~100 calls per 10 s
    clearTimeout(timer);
    if (!state.image || !state.model) return;
    if (controller) controller.abort();
    controller = new AbortController();
    const gen = ++generation;
    const signal = controller.signal;
    setBusy("rendering…");
    try {
      const renderers = { single: renderSingle, sweep: renderSweep, strategies: renderStrategies, custom: renderCustom, compare: renderCompare };
      await renderers[state.view](signal, () => gen === generation);
      if (gen === generation) showError(null);
    } catch (err) {
      if (err.name === "AbortError") return;
      if (gen === generation) showError(err.message);
    } finally {
      if (gen === generation) {
        setBusy(null);
        els.download.disabled = !$("[data-rows] .fig-row", activeView());
      }
    }
  }

  function currentParams() {
    return { ratio: state.strategy === "grid" ? config.gridRatio : state.ratio, strategy: state.strategy, seed: state.seed };
  }

  async function renderSingle(signal, isCurrent) {
    const result = await reconstruct({ ...currentParams(), attention: els.showAttention.checked }, signal);
    if (!isCurrent()) return;
    state.single = result;
    fillRows($("#view-single"), [{ label: rowLabel(result), result }]);
    drawAttention(result);
    $("[data-empty]", $("#view-single")).hidden = true;
    els.details.hidden = false;
    renderMetrics(result);
    renderHeatmap(result);
  }

  // The Compare tab lives in compare.js; it gets the current image and mask settings from here.
  async function renderCompare(signal, isCurrent) {
    els.note.hidden = true;
    const inputs = { image: state.image, imageName: state.imageName, resize: state.resize, params: currentParams() };
    await window.maeCompare.render(inputs, signal, isCurrent);
  }
  document.addEventListener("mae:compare-models", () => { if (state.view === "compare") scheduleRender(0); });

  async function renderSweep(signal, isCurrent) {
    const strategy = state.strategy === "grid" ? "random" : state.strategy;
    $("#sweep-help").textContent = `One image, seed ${state.seed}, ${strategy} masking at 75%, 85% and 95% (paper Figure 4).` +
      (state.strategy === "grid" ? " Grid masking has a fixed ratio, so the sweep uses random masking." : "");
    const results = await Promise.all(SWEEP_RATIOS.map((ratio) => reconstruct({ ratio, strategy, seed: state.seed }, signal)));
    if (!isCurrent()) return;
    fillRows($("#view-sweep"), results.map((result) => ({ label: rowLabel(result), result })));
  }

  async function renderStrategies(signal, isCurrent) {
    const results = await Promise.all(COMPARE_STRATEGIES.map((strategy) =>
      reconstruct({ ratio: config.gridRatio, strategy, seed: state.seed }, signal)));
    if (!isCurrent()) return;
    fillRows($("#view-strategies"), results.map((result) => ({ label: rowLabel(result), result })));
  }

  async function renderCustom(signal, isCurrent) {
    if (!state.customMask || !sameGrid(state.customMask, state.single)) {
      // start from the mask the current controls draw
      const base = state.single && sameParams(state.single) ? state.single : await reconstruct(currentParams(), signal);
      if (!isCurrent()) return;
      state.single = base;
      state.customMask = base.mask.map((row) => row.slice());
    }
    state.customBase = panelSrc(state.single, "original");
    await editorImage();
    drawEditor();
    const problem = customMaskProblem(state.customMask);
    els.customMessage.hidden = !problem;
    els.customMessage.textContent = problem || "";
    if (problem) {
      fillRows($("#view-custom"), []); // the result on screen belongs to another mask
      return;
    }
    const result = await reconstruct({ mask: state.customMask }, signal);
    if (!isCurrent()) return;
    fillRows($("#view-custom"), [{ label: rowLabel(result), result }]);
  }

  function customMaskProblem(mask) {
    const hidden = countHidden(mask);
    if (hidden === 0) {
      return "No patch is hidden, so there is nothing to reconstruct. Click or drag on the image to hide " +
        "patches, or use “Copy current mask”.";
    }
    if (hidden === mask.length * mask[0].length) {
      return "Every patch is hidden: the encoder needs at least one visible patch. Click or drag to reveal some.";
    }
    return null;
  }

  function sameGrid(mask, result) {
    return !!result && mask.length === result.grid[0] && mask[0].length === result.grid[1];
  }

  function sameParams(result) {
    const p = currentParams();
    return result.seed === p.seed && result.strategy === p.strategy && Math.abs(result.mask_ratio - p.ratio) < 0.02 &&
      result.model === state.model && result.resize === state.resize;
  }

  function rowLabel(result) {
    const kind = result.strategy === "custom" ? "custom mask" : `${result.strategy} masking`;
    const seed = result.seed === null ? "" : ` · seed ${result.seed}`;
    return `${pct(result.mask_ratio)} removed · ${kind}${seed}`;
  }

  function rowStats(result) {
    const m = result.metrics;
    return `masked MSE ${fmt(m.masked_mse)} · PSNR ${fmt(m.masked_psnr, 2)} dB · ${fmt(m.inference_ms)} ms`;
  }

  // Keep one .fig-row per item, updating images in place (no flicker on re-render).
  function fillRows(view, items) {
    const note = (items.find((item) => item.result.note) || {}).result;
    els.note.hidden = !note;
    els.note.textContent = note ? note.note : "";
    const container = $("[data-rows]", view);
    while (container.children.length > items.length) container.lastElementChild.remove();
    items.forEach((item, i) => {
      let row = container.children[i];
      if (!row) {
        row = buildRow();
        container.appendChild(row);
      }
      const { result } = item;
      $(".label", row).textContent = item.label;
      $(".stats", row).textContent = rowStats(result);
      row.dataset.seed = result.seed === null ? "" : result.seed;
      row.style.setProperty("--rows", result.grid[0]);
      row.style.setProperty("--cols", result.grid[1]);
      for (const [name, title] of PANELS) {
        const img = $(`[data-panel="${name}"] img`, row);
        img.src = panelSrc(result, name);
        img.alt = `${title}: ${item.label}`;
      }
    });
  }

  function buildRow() {
    const row = document.createElement("div");
    row.className = "fig-row";
    row.innerHTML = '<div class="fig-row-head"><span class="label"></span><span class="stats"></span></div><div class="fig-panels"></div>';
    const panels = $(".fig-panels", row);
    for (const [name, title] of PANELS) {
      const fig = document.createElement("figure");
      fig.className = "fig-panel";
      fig.dataset.panel = name;
      fig.innerHTML = '<div class="frame"><img alt="" width="224" height="224"><div class="grid-overlay"></div></div>';
      const cap = document.createElement("figcaption");
      cap.textContent = title;
      fig.appendChild(cap);
      if (name === "reconstruction") {
        const note = document.createElement("p");
        note.className = "panel-note";
        note.textContent = RECONSTRUCTION_NOTE;
        fig.appendChild(note);
      }
      panels.appendChild(fig);
    }
    return row;
  }

  function renderMetrics(result) {
    const m = result.metrics;
    const t = result.timing;
    const total = result.grid[0] * result.grid[1];
    const hidden = countHidden(result.mask);
    const rows = [
      ["Masked-patch MSE", `${fmt(m.masked_mse)} (pixels 0–255)`],
      ["Masked-patch PSNR", `${fmt(m.masked_psnr, 2)} dB`],
      ["Visible-patch MSE", `${fmt(m.visible_mse)} (not in the loss; can exceed the masked MSE)`],
      ["Removed", `${hidden} of ${total} patches (${pct(hidden / total)})`],
      ["Inference", `${fmt(m.inference_ms)} ms`],
      ["Server", `${fmt(t.server_ms)} ms (queue ${fmt(t.queue_ms)} ms, batch of ${t.batch_size})`],
      ["Model", `${result.model} · ${result.image_size[0]}×${result.image_size[1]} px, ${result.grid[0]}×${result.grid[1]} patches`],
      ["Seed", result.seed === null ? "custom mask" : String(result.seed)],
    ];
    els.metrics.replaceChildren(...rows.flatMap(([k, v]) => {
      const dt = document.createElement("dt");
      dt.textContent = k;
      const dd = document.createElement("dd");
      dd.textContent = v;
      dd.dataset.metric = k;
      return [dt, dd];
    }));
  }

  const HEAT_FIXED_MAX = 3000; // squared 0-255 error: ~13 dB PSNR, where reconstructions are poor

  function renderHeatmap(result) {
    const target = $("#heatmap");
    if (!window.Plotly) {
      target.textContent = "The heat-map needs plotly.js, which did not load.";
      return;
    }
    const includeVisible = els.heatAll.checked;
    const z = result.error_map.map((row, r) => row.map((v, c) => (includeVisible || result.mask[r][c] ? v : null)));
    const text = result.mask.map((row) => row.map((v) => (v ? "removed" : "visible")));
    const data = [{
      type: "heatmap", z, text, colorscale: "Viridis",
      // a fixed range compares views and images; otherwise each view spans its own min..max
      ...(els.heatFixed && els.heatFixed.checked ? { zmin: 0, zmax: HEAT_FIXED_MAX, zauto: false } : {}),
      hovertemplate: "row %{y}, col %{x}<br>MSE %{z:.1f}<br>%{text}<extra></extra>",
      colorbar: { title: { text: "MSE", side: "right" }, thickness: 12 },
      xgap: 1, ygap: 1,
    }];
    const layout = {
      margin: { l: 36, r: 10, t: 8, b: 30 },
      yaxis: { autorange: "reversed", scaleanchor: "x", constrain: "domain", zeroline: false,
               title: { text: "patch row" } },
      xaxis: { constrain: "domain", zeroline: false, title: { text: "patch column" }, side: "bottom" },
      plot_bgcolor: "#e9ecf0", paper_bgcolor: "rgba(0,0,0,0)",
      font: { family: "system-ui, sans-serif", size: 11, color: "#1c2330" },
    };
    window.Plotly.react(target, data, layout, { displayModeBar: false, responsive: true });
  }

  // Attention overlay: one canvas pixel per patch over the masked panel (removed patches clear).
  function drawAttention(result) {
    const frame = $('#view-single .fig-panel[data-panel="masked"] .frame');
    if (!frame) return;
    const old = $(".attention-overlay", frame);
    if (old) old.remove();
    const att = result && result.attention;
    els.attentionControls.hidden = !att;
    if (!att || !els.showAttention.checked) return;
    if (els.attentionHead.options.length !== att.num_heads + 1) {
      els.attentionHead.replaceChildren(new Option("mean of the heads", "mean"),
        ...att.heads.map((_, i) => new Option(`head ${i + 1}`, String(i))));
    }
    const which = els.attentionHead.value;
    const grid = which === "mean" ? att.mean : att.heads[Number(which)];
    const canvas = document.createElement("canvas");
    canvas.className = "attention-overlay";
    canvas.width = grid[0].length;
    canvas.height = grid.length;
    canvas.dataset.head = which;
    const ctx = canvas.getContext("2d");
    grid.forEach((row, r) => row.forEach((v, c) => {
      if (v === null) return;
      ctx.fillStyle = `rgba(255, ${Math.round(200 * (1 - v))}, 0, ${(0.15 + 0.7 * v).toFixed(3)})`;
      ctx.fillRect(c, r, 1, 1);
    }));
    frame.appendChild(canvas);
  }

  function countHidden(mask) {
    return mask.reduce((n, row) => n + row.reduce((a, v) => a + v, 0), 0);
  }

  // ------------------------------------------------------------------ status
  function setBusy(text) {
    els.busy.textContent = text || "";
    els.busy.classList.toggle("active", !!text);
  }

  function showError(message) {
    els.error.hidden = !message;
    els.error.textContent = message || "";
  }

  function showBanner(kind, html) {
    let el = $(`[data-kind="${kind}"]`, els.banner);
    if (!html) {
      if (el) el.remove();
      return;
    }
    if (!el) {
      el = document.createElement("div");
      el.dataset.kind = kind;
      els.banner.appendChild(el);
    }
    el.className = `banner ${kind === "loading" ? "banner-info" : "banner-warn"}`;
    el.innerHTML = html;
  }

  async function watchReadiness() {
    for (;;) {
      let body = null;
      try {
        const res = await fetch("/api/ready");
        body = await res.json();
      } catch (_) { return; }
      if (body.state === "loading") {
        showBanner("loading", "<strong>Loading the default checkpoint…</strong> Reconstructions start when it is ready.");
        await sleep(1000);
        continue;
      }
      showBanner("loading", null);
      if (body.state === "failed") showBanner("default-failed", `<strong>Default checkpoint failed to load.</strong> ${escapeHtml(body.message)}`);
      return;
    }
  }

  function escapeHtml(text) {
    const d = document.createElement("div");
    d.textContent = text;
    return d.innerHTML;
  }

  // ------------------------------------------------------------------ image input
  async function setImage(blob, name, sample = null) {
    if (!blob || !(blob.type === "" || blob.type.startsWith("image/"))) {
      showError(`"${name || "that file"}" is not an image; choose a JPEG, PNG, WebP, GIF, BMP or TIFF file.`);
      return;
    }
    let sent = blob;
    let info = `${name} · ${(blob.size / 1024).toFixed(0)} KB`;
    try {
      const bitmap = await createImageBitmap(blob);
      info = `${name} · ${bitmap.width}×${bitmap.height}`;
      const scale = MAX_SIDE / Math.max(bitmap.width, bitmap.height);
      if (scale < 1) {
        const w = Math.round(bitmap.width * scale);
        const h = Math.round(bitmap.height * scale);
        const canvas = document.createElement("canvas");
        canvas.width = w;
        canvas.height = h;
        const ctx = canvas.getContext("2d");
        ctx.fillStyle = "#fff"; // transparency composited on white, as the server does
        ctx.fillRect(0, 0, w, h);
        ctx.drawImage(bitmap, 0, 0, w, h);
        sent = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.92));
        name = name.replace(/\.[^.]*$/, "") + ".jpg";
        info += ` (sent as ${w}×${h})`;
      }
      bitmap.close();
    } catch (_) {
      // the browser cannot decode it (e.g. TIFF): send as is and let the server decide
    }
    state.image = sent;
    state.imageName = name || "image.png";
    state.sample = sample;
    state.single = null;
    state.customMask = null;
    els.fileInfo.textContent = info;
    $$(".sample").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.name === sample)));
    render();
  }

  els.fileInput.addEventListener("change", () => {
    const file = els.fileInput.files && els.fileInput.files[0];
    if (file) setImage(file, file.name);
  });

  function firstImageFile(list) {
    return Array.from(list || []).find((f) => f.type.startsWith("image/")) || (list && list[0]);
  }

  document.addEventListener("dragover", (e) => {
    if (!e.dataTransfer || !Array.from(e.dataTransfer.types).includes("Files")) return;
    e.preventDefault();
    document.body.classList.add("dragover");
  });
  document.addEventListener("dragleave", (e) => {
    if (e.relatedTarget === null) document.body.classList.remove("dragover");
  });
  document.addEventListener("drop", (e) => {
    document.body.classList.remove("dragover");
    if (!e.dataTransfer || !e.dataTransfer.files.length) return;
    e.preventDefault();
    const file = firstImageFile(e.dataTransfer.files);
    if (file) setImage(file, file.name);
  });
  document.addEventListener("paste", (e) => {
    const items = Array.from((e.clipboardData && e.clipboardData.items) || []);
    const item = items.find((it) => it.kind === "file" && it.type.startsWith("image/"));
    if (!item) return;
    e.preventDefault();
    const file = item.getAsFile();
    const ext = (file.type.split("/")[1] || "png").replace("jpeg", "jpg");
    setImage(file, file.name && file.name !== "image.png" ? file.name : `pasted.${ext}`);
  });

  $$(".sample").forEach((button) => {
    button.addEventListener("click", async () => {
      try {
        const res = await fetch(button.dataset.src);
        setImage(await res.blob(), button.dataset.name, button.dataset.name);
      } catch (err) {
        showError(`Could not load the sample: ${err.message}`);
      }
    });
  });

  // ------------------------------------------------------------------ controls
  function modelInfo(id) {
    return config.models.find((m) => m.id === id);
  }

  function renderModelCard() {
    const m = modelInfo(state.model);
    if (!m) {
      els.modelCard.replaceChildren();
      els.modelBrief.textContent = "";
      return;
    }
    const s = m.summary;
    const size = Array.isArray(s.image_size) ? ` · ${s.image_size[0]} px` : "";
    els.modelBrief.textContent = `(${s.architecture.split(" encoder")[0]}${size}${s.norm_pix_loss ? " · norm-pix" : ""})`;
    const rows = [
      ["Architecture", s.architecture],
      ["Training data", s.training_data],
      ["Training", s.training],
      ["Norm-pix loss", s.norm_pix_loss ? "yes: removed patches are shown with their true mean/variance" : "no"],
    ];
    els.modelCard.replaceChildren(...rows.flatMap(([k, v]) => {
      const dt = document.createElement("dt");
      dt.textContent = k;
      const dd = document.createElement("dd");
      dd.textContent = v;
      return [dt, dd];
    }));
  }

  function applyStrategy() {
    const locked = state.strategy === "grid";
    els.ratio.disabled = locked;
    if (locked) {
      els.ratio.value = String(Math.round(config.gridRatio * 100));
      els.ratioHelp.textContent = "Locked at 75%: grid masking keeps one patch of every 2×2 cell, so it always removes 3 of 4.";
      els.ratioHelp.classList.add("locked");
    } else {
      els.ratio.value = String(Math.round(state.userRatio * 100));
      els.ratioHelp.textContent = "Fraction of patches removed; the paper uses 75%.";
      els.ratioHelp.classList.remove("locked");
    }
    state.ratio = Number(els.ratio.value) / 100;
    els.ratioOut.textContent = pct(state.ratio);
    els.strategyHelp.textContent = STRATEGY_HELP[state.strategy] || "";
  }

  els.ratio.addEventListener("input", () => {
    state.ratio = state.userRatio = Number(els.ratio.value) / 100;
    els.ratioOut.textContent = pct(state.ratio);
    state.customMask = null;
    scheduleRender();
  });

  $$('input[name="strategy"]').forEach((radio) => {
    radio.addEventListener("change", () => {
      if (!radio.checked) return;
      state.strategy = radio.value;
      state.customMask = null;
      applyStrategy();
      scheduleRender(0);
    });
  });

  els.seed.addEventListener("input", () => {
    const v = Number(els.seed.value);
    if (els.seed.value === "" || !Number.isInteger(v) || v < 0) return;
    state.seed = v;
    state.customMask = null;
    scheduleRender();
  });
  els.newMask.addEventListener("click", () => {
    state.seed = randomSeed();
    els.seed.value = String(state.seed);
    state.customMask = null;
    scheduleRender(0);
  });

  els.model.addEventListener("change", () => {
    state.model = els.model.value;
    state.customMask = null;
    renderModelCard();
    scheduleRender(0);
  });

  els.resize.addEventListener("change", () => {
    state.resize = els.resize.value;
    state.customMask = null;
    scheduleRender(0);
  });

  els.showGrid.addEventListener("change", () => {
    document.body.classList.toggle("show-grid", els.showGrid.checked);
  });
  els.showAttention.addEventListener("change", () => {
    if (els.showAttention.checked && state.view === "single") scheduleRender(0);
    else drawAttention(state.single);
  });
  els.attentionHead.addEventListener("change", () => drawAttention(state.single));
  els.heatAll.addEventListener("change", () => {
    if (state.single) renderHeatmap(state.single);
  });
  els.heatFixed.addEventListener("change", () => {
    if (state.single) renderHeatmap(state.single);
  });

  // ------------------------------------------------------------------ tabs
  const tabs = $$('[role="tab"]');

  function activeView() {
    return $(`#view-${state.view}`);
  }

  function selectView(view, focus = false) {
    state.view = view;
    for (const tab of tabs) {
      const on = tab.dataset.view === view;
      tab.setAttribute("aria-selected", String(on));
      tab.tabIndex = on ? 0 : -1;
      $(`#${tab.getAttribute("aria-controls")}`).hidden = !on;
      if (on && focus) tab.focus();
    }
    els.download.disabled = !$("[data-rows] .fig-row", activeView());
    scheduleRender(0);
  }

  tabs.forEach((tab, i) => {
    tab.addEventListener("click", () => selectView(tab.dataset.view));
    tab.addEventListener("keydown", (e) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[e.key];
      if (step) {
        e.preventDefault();
        selectView(tabs[(i + step + tabs.length) % tabs.length].dataset.view, true);
      } else if (e.key === "Home" || e.key === "End") {
        e.preventDefault();
        selectView(tabs[e.key === "Home" ? 0 : tabs.length - 1].dataset.view, true);
      }
    });
  });

  // ------------------------------------------------------------------ custom-mask editor
  const editor = { img: new Image(), cursor: [0, 0], painting: false, paintValue: 1, lastCell: null };

  function editorImage() {
    if (editor.img.src === state.customBase && editor.img.complete) return Promise.resolve();
    return new Promise((resolve) => {
      editor.img.onload = resolve;
      editor.img.onerror = resolve;
      editor.img.src = state.customBase;
    });
  }

  function drawEditor() {
    const mask = state.customMask;
    if (!mask) return;
    const canvas = els.editor;
    const rows = mask.length;
    const cols = mask[0].length;
    const img = editor.img;
    const aspect = img.naturalWidth && img.naturalHeight ? img.naturalHeight / img.naturalWidth : rows / cols;
    canvas.width = 448;
    canvas.height = Math.round(448 * aspect);
    const ctx = canvas.getContext("2d");
    const cw = canvas.width / cols;
    const ch = canvas.height / rows;
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    if (img.naturalWidth) ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
    ctx.fillStyle = "rgba(20, 26, 36, 0.78)";
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) {
        if (mask[r][c]) ctx.fillRect(c * cw, r * ch, cw, ch);
      }
    }
    ctx.strokeStyle = "rgba(255, 255, 255, 0.35)";
    ctx.lineWidth = 1;
    ctx.beginPath();
    for (let c = 1; c < cols; c++) { ctx.moveTo(Math.round(c * cw) + 0.5, 0); ctx.lineTo(Math.round(c * cw) + 0.5, canvas.height); }
    for (let r = 1; r < rows; r++) { ctx.moveTo(0, Math.round(r * ch) + 0.5); ctx.lineTo(canvas.width, Math.round(r * ch) + 0.5); }
    ctx.stroke();
    if (document.activeElement === canvas) {
      const [r, c] = editor.cursor;
      ctx.strokeStyle = "#ffd166";
      ctx.lineWidth = 3;
      ctx.strokeRect(c * cw + 1.5, r * ch + 1.5, cw - 3, ch - 3);
    }
    const hidden = countHidden(mask);
    els.customCount.textContent = `${hidden} of ${rows * cols} patches hidden (${pct(hidden / (rows * cols))})`;
  }

  function cellAt(event) {
    const mask = state.customMask;
    const rect = els.editor.getBoundingClientRect();
    const c = Math.floor(((event.clientX - rect.left) / rect.width) * mask[0].length);
    const r = Math.floor(((event.clientY - rect.top) / rect.height) * mask.length);
    if (r < 0 || c < 0 || r >= mask.length || c >= mask[0].length) return null;
    return [r, c];
  }

  function paint(cell) {
    if (!cell) return;
    const [r, c] = cell;
    if (state.customMask[r][c] !== editor.paintValue) {
      state.customMask[r][c] = editor.paintValue;
      drawEditor();
    }
  }

  els.editor.addEventListener("pointerdown", (e) => {
    if (!state.customMask) return;
    const cell = cellAt(e);
    if (!cell) return;
    e.preventDefault();
    els.editor.setPointerCapture(e.pointerId);
    editor.painting = true;
    editor.paintValue = state.customMask[cell[0]][cell[1]] ? 0 : 1;
    editor.cursor = cell;
    paint(cell);
  });
  els.editor.addEventListener("pointermove", (e) => {
    if (editor.painting) paint(cellAt(e));
  });
  const endPaint = () => {
    if (!editor.painting) return;
    editor.painting = false;
    scheduleRender(0);
  };
  els.editor.addEventListener("pointerup", endPaint);
  els.editor.addEventListener("pointercancel", endPaint);
  els.editor.addEventListener("focus", drawEditor);
  els.editor.addEventListener("blur", drawEditor);
  els.editor.addEventListener("keydown", (e) => {
    const mask = state.customMask;
    if (!mask) return;
    const moves = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
    const [r, c] = editor.cursor;
    if (moves[e.key]) {
      e.preventDefault();
      const [dr, dc] = moves[e.key];
      editor.cursor = [Math.min(mask.length - 1, Math.max(0, r + dr)), Math.min(mask[0].length - 1, Math.max(0, c + dc))];
      drawEditor();
    } else if (e.key === " " || e.key === "Enter") {
      e.preventDefault();
      mask[r][c] = mask[r][c] ? 0 : 1;
      drawEditor();
      scheduleRender();
    }
  });

  function editMask(fn) {
    if (!state.customMask) return;
    state.customMask = state.customMask.map((row) => row.map(fn));
    drawEditor();
    scheduleRender(0);
  }
  $("#mask-invert").addEventListener("click", () => editMask((v) => 1 - v));
  $("#mask-clear").addEventListener("click", () => editMask(() => 0));
  $("#mask-from-current").addEventListener("click", () => {
    state.customMask = null;
    if (state.single && !sameParams(state.single)) state.single = null;
    scheduleRender(0);
  });

  // ------------------------------------------------------------------ download
  async function downloadFigure() {
    const rows = $$("[data-rows] .fig-row", activeView());
    if (!rows.length) return;
    const first = $("img", rows[0]);
    const w = first.naturalWidth;
    const h = first.naturalHeight;
    const gap = 8;
    const head = 20;
    const caption = 16;
    const rowH = head + h + caption + gap;
    const canvas = document.createElement("canvas");
    canvas.width = 4 * w + 5 * gap;
    canvas.height = rows.length * rowH + gap;
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.textBaseline = "top";
    rows.forEach((row, i) => {
      const top = gap + i * rowH;
      ctx.fillStyle = "#1c2330";
      ctx.font = "600 12px system-ui, sans-serif";
      ctx.fillText(`${$(".label", row).textContent}   ${$(".stats", row).textContent}`, gap, top + 2, canvas.width - 2 * gap);
      PANELS.forEach(([name, title], c) => {
        const left = gap + c * (w + gap);
        ctx.drawImage($(`[data-panel="${name}"] img`, row), left, top + head, w, h);
        ctx.fillStyle = "#5b6574";
        ctx.font = "11px system-ui, sans-serif";
        ctx.fillText(title, left, top + head + h + 3, w);
      });
    });
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = `mae-${state.view}-${state.model}-seed${state.seed}.png`;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 2000);
  }
  els.download.addEventListener("click", downloadFigure);

  // ------------------------------------------------------------------ URL state
  // What is shown lives in the query string (replaceState: no history entry per change), so a
  // link or a reload shows the same view: /?model=…&sample=…&ratio=0.75&strategy=…&seed=…&view=…
  const VIEWS = tabs.map((tab) => tab.dataset.view);

  function writeUrl() {
    const q = new URLSearchParams();
    if (state.model) q.set("model", state.model);
    if (state.sample) q.set("sample", state.sample);
    q.set("ratio", String(Math.round(state.userRatio * 100) / 100));
    q.set("strategy", state.strategy);
    q.set("seed", String(state.seed));
    q.set("view", state.view);
    if (state.resize !== "crop") q.set("fit", state.resize);
    const url = `${location.pathname}?${q}`;
    if (url === location.pathname + location.search) return;
    try {
      history.replaceState(history.state, "", url);
    } catch (_) {
      // rate-limited (Safari throws): the next render writes it
    }
  }

  // Apply the link's parameters to the controls; say which ones could not be used and why.
  // Returns the sample button the link names, if any.
  function applyUrl() {
    const q = new URLSearchParams(location.search);
    const ignored = [];
    const model = q.get("model");
    if (model !== null) {
      const option = Array.from(els.model.options).find((o) => o.value === model);
      if (option && !option.disabled) {
        els.model.value = state.model = model;
      } else {
        ignored.push(`checkpoint “${model}” ${option ? "cannot reconstruct" : "is not in the checkpoint folder"}`);
      }
    }
    const strategy = q.get("strategy");
    if (strategy !== null) {
      const radio = $$('input[name="strategy"]').find((r) => r.value === strategy);
      if (radio) {
        radio.checked = true;
        state.strategy = strategy;
      } else {
        ignored.push(`strategy “${strategy}” (use ${config.strategies.join(", ")})`);
      }
    }
    const ratio = q.get("ratio");
    if (ratio !== null) {
      const percent = Math.round(Number(ratio) * 100);
      const [lo, hi] = [Number(els.ratio.min), Number(els.ratio.max)];
      if (ratio.trim() !== "" && percent >= lo && percent <= hi) state.ratio = state.userRatio = percent / 100;
      else ignored.push(`ratio “${ratio}” (use a fraction from ${lo / 100} to ${hi / 100})`);
    }
    const seed = q.get("seed");
    if (seed !== null) {
      if (/^\d+$/.test(seed) && Number.isSafeInteger(Number(seed))) state.seed = Number(seed);
      else ignored.push(`seed “${seed}” (use a whole number, 0 or more)`);
    }
    const fit = q.get("fit");
    if (fit !== null) {
      if (Array.from(els.resize.options).some((o) => o.value === fit)) els.resize.value = state.resize = fit;
      else ignored.push(`fit “${fit}” (use crop or keep-aspect)`);
    }
    const view = q.get("view");
    if (view !== null) {
      if (VIEWS.includes(view)) state.view = view;
      else ignored.push(`view “${view}” (use ${VIEWS.join(", ")})`);
    }
    const sample = q.get("sample");
    const button = sample === null ? null : $$(".sample").find((b) => b.dataset.name === sample);
    if (sample !== null && !button) ignored.push(`sample “${sample}” (not one of the bundled samples)`);
    if (ignored.length) {
      showBanner("link", `<strong>Part of this link was not used:</strong> ${escapeHtml(ignored.join("; "))}. ` +
        "The defaults are shown for those.");
    }
    return button;
  }

  // ------------------------------------------------------------------ start
  const linkedSample = applyUrl();
  els.seed.value = String(state.seed);
  applyStrategy();
  renderModelCard();
  selectView(state.view);
  watchReadiness();
  const firstSample = linkedSample || $(".sample");
  if (firstSample && state.model) firstSample.click();
})();
