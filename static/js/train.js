// Train pages: /train (submit a job, follow the queue) and /train/jobs/<id> (curves, snapshots,
// logs, cancel / retry). Plain JS, no build step; talks only to this server's /api/jobs.
(() => {
  "use strict";

  const config = JSON.parse(document.getElementById("page-config").textContent);
  const $ = (sel, root = document) => root.querySelector(sel);
  const FINAL = new Set(["succeeded", "failed", "cancelled"]);

  // ------------------------------------------------------------------ helpers
  const { api, el } = window.MAELab;  // static/js/common.js

  function duration(seconds) {
    if (seconds === null || seconds === undefined || !isFinite(seconds)) return "–";
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
    return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")} min`;
  }

  function ago(unix) {
    if (!unix) return "–";
    const s = Date.now() / 1000 - unix;
    if (s < 60) return "just now";
    if (s < 3600) return `${Math.floor(s / 60)} min ago`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
    return new Date(unix * 1000).toLocaleDateString();
  }

  const clock = (unix) => (unix ? new Date(unix * 1000).toLocaleTimeString() : "–");
  const pct = (p) => `${Math.round((p || 0) * 100)}%`;
  const shortModel = (name) => (name || "").replace(/^mae_vit_/, "").replace(/_patch(\d+)$/, "/$1");
  const custom = (params) => Object.keys(params.model_overrides || {}).length > 0;
  const fmtLoss = (v) => (v === null || v === undefined ? "–" : Number(v).toFixed(4));

  function stateLabel(job) {
    if (job.state === "running" && job.cancel_requested) return "cancelling";
    if (job.state === "running" && job.stale) return "stalled";
    return job.state;
  }

  function stateBadge(job) {
    const label = stateLabel(job);
    const title = job.stale ? "its worker stopped responding; another worker will resume it" : null;
    return el("span", { class: `state state-${label}`, title, text: label });
  }

  function progressBar(job, large = false) {
    const value = Math.round((job.progress || 0) * 100);
    const bar = el("div", {
      class: `progress${large ? " progress-lg" : ""}${job.state === "running" ? " active" : ""}`,
      role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": String(value),
      "aria-label": `${job.id} progress`,
    }, el("span", { class: `bar bar-${job.state}`, style: `width: ${value}%` }));
    return bar;
  }

  // Poll while the tab is visible; back off when it is hidden.
  function poller(fn, interval) {
    let timer = null;
    let stopped = false;
    const tick = async () => {
      timer = null;
      if (stopped) return;
      if (!document.hidden) {
        try {
          if ((await fn()) === false) {
            stopped = true;
            return;
          }
        } catch (err) {
          console.warn("poll failed:", err);
        }
      }
      if (!stopped) timer = setTimeout(tick, interval);
    };
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && !stopped && timer === null) tick();
    });
    return {
      start() { stopped = false; if (timer === null) tick(); },
      now() { if (timer !== null) clearTimeout(timer); timer = null; stopped = false; tick(); },
    };
  }

  // ================================================================== /train
  function trainPage() {
    const form = $("#job-form");
    const els = {
      body: $("#jobs-body"), empty: $("#jobs-empty"), summary: $("#queue-summary"),
      noWorker: $("#no-worker"), error: $("#form-error"), status: $("#form-status"),
      ratio: $("#f-ratio"), ratioOut: $("#f-ratio-out"), ratioHelp: $("#help-ratio"),
      submit: $("#f-submit"), recipe: $("#f-recipe"), dataset: $("#f-dataset"),
    };
    let highlight = null;

    function renderJobs(payload) {
      const jobs = payload.jobs || [];
      els.body.replaceChildren(...jobs.map((job) => {
        const p = job.params || {};
        const progressText = job.total_steps ? `${job.step} / ${job.total_steps}` : job.state === "queued" ? "waiting" : "–";
        const row = el("tr", { "data-job": job.id, "data-state": job.state, class: job.id === highlight ? "fresh" : null },
          el("td", {}, el("a", { href: job.links.page, class: "job-link", text: job.id })),
          job.damaged ? el("td", {}, el("span", { class: "damaged", text: "damaged" }),
            el("span", { class: "sub why", text: job.damaged }))
            : job.kind && job.kind !== "pretrain"
              ? el("td", {}, el("span", { text: `${job.kind} · ${p.checkpoint} · ${p.dataset}` }),
                el("span", { class: "sub", text: job.kind === "knn" ? `k ${p.k ?? 20}` : `${p.epochs ?? "recipe"} ep` }))
              : el("td", {}, el("span", { text: `${shortModel(p.model)}${custom(p) ? " (custom)" : ""} · ${p.dataset}` }),
                el("span", { class: "sub", text: `${p.epochs} ep · batch ${p.batch_size}` })),
          el("td", {}, stateBadge(job), job.state === "failed" && job.error
            ? el("span", { class: "sub why", text: job.error }) : null),
          el("td", { class: "col-progress" }, progressBar(job),
            el("span", { class: "sub", text: `${pct(job.progress)} · ${progressText}` })),
          el("td", { text: job.state === "running" ? duration(job.eta_s) : "–" }),
          el("td", { class: "num", text: fmtLoss(job.loss) }),
          el("td", { title: new Date(job.created * 1000).toLocaleString(), text: ago(job.created) }));
        if (job.state === "failed" && job.error) row.title = job.error;
        return row;
      }));
      els.empty.hidden = jobs.length > 0;
      const c = payload.counts || {};
      const workers = (payload.workers || []).length;
      els.summary.textContent = `${c.running || 0} running · ${c.queued || 0} queued · ` +
        `${workers} worker${workers === 1 ? "" : "s"} online`;
      els.noWorker.hidden = workers > 0;
    }

    const poll = poller(async () => renderJobs(await api("/api/jobs")), 2000);
    renderJobs(config.jobs);
    poll.start();

    // -- form: every input's bounds come from the server's field specs (config.limits)
    const limits = config.limits || {};
    for (const [name, lim] of Object.entries(limits)) {
      const input = form.elements[name];
      if (!input || input.type !== "number") continue;
      // an exclusive bound is stepped over (blr > 0: the smallest positive value)
      if (lim.min !== null) input.min = String(lim.exclusiveMin && lim.step !== "any" ? lim.min + lim.step : lim.min);
      if (lim.max !== null) input.max = String(lim.exclusiveMax && lim.step !== "any" ? lim.max - lim.step : lim.max);
      input.step = String(lim.step);
    }
    if (limits.mask_ratio) {  // the slider is in percent
      const r = limits.mask_ratio, step = r.step * 100;
      els.ratio.min = String(Math.round(r.min * 100 + (r.exclusiveMin ? step : 0)));
      els.ratio.max = String(Math.round(r.max * 100 - (r.exclusiveMax ? step : 0)));
      els.ratio.step = String(step);
    }

    // A batch is at most the dataset's size; the recipe's default batch is capped to it, and said.
    const batch = form.elements.batch_size, batchHelp = $("#help-batch");
    let batchTouched = false;
    batch.addEventListener("input", () => { batchTouched = true; batchHelp.hidden = true; });
    function syncBatch() {
      const option = els.dataset.selectedOptions[0];
      const images = Number((option || {}).dataset?.images || 0);
      const capped = option && option.textContent.includes("+");
      const lim = limits.batch_size || {};
      batch.max = String(images && !capped ? Math.min(images, lim.max ?? images) : lim.max ?? "");
      const wanted = config.recipes[els.recipe.value]?.batch_size ?? config.defaults.batch_size;
      if (!batchTouched) {
        const fits = images && !capped && wanted > images;
        batch.value = String(fits ? images : wanted);
        batchHelp.hidden = !fits;
        batchHelp.textContent = fits ? `Batch capped to ${images}: ${els.dataset.value} has ${images} images (the recipe's batch is ${wanted}).` : "";
      }
    }
    els.dataset.addEventListener("change", syncBatch);
    syncBatch();

    const strategy = () => (form.querySelector("input[name=mask_strategy]:checked") || {}).value;
    function syncRatio() {
      const grid = strategy() === "grid";
      if (grid) els.ratio.value = String(Math.round(config.gridRatio * 100));
      els.ratio.disabled = grid;
      els.ratioOut.textContent = `${els.ratio.value}%`;
      els.ratioHelp.textContent = grid
        ? "Grid masking keeps one patch of every 2×2 cell, so it always removes 75%."
        : "The paper trains with 75% removed; grid masking is always 75%.";
    }
    els.ratio.addEventListener("input", syncRatio);
    form.querySelectorAll("input[name=mask_strategy]").forEach((r) => r.addEventListener("change", syncRatio));
    syncRatio();

    // An empty Base lr means the recipe's lr from scratch, and the server's continued-pretraining
    // lr from a checkpoint (config.continueLr: the value and the note a job gets).
    const blr = form.elements.blr, lrHelp = $("#help-lr");
    function syncLr() {
      const d = config.recipes[els.recipe.value] || config.defaults;
      const recipeLr = d.lr !== null && d.lr !== undefined ? `lr ${d.lr}` : `base lr ${d.blr}`;
      const start = form.elements.init_from.value, cont = config.continueLr || {};
      blr.placeholder = start ? `lr ${cont.text}` : "recipe";
      lrHelp.textContent = start ? `Empty: ${cont.notes[els.recipe.value]}.` : `Empty: the recipe's ${recipeLr}.`;
    }
    form.elements.init_from.addEventListener("change", syncLr);
    syncLr();

    els.recipe.addEventListener("change", () => {
      const d = config.recipes[els.recipe.value];
      if (!d) return;
      form.elements.model.value = d.model;
      form.elements.epochs.value = d.epochs;
      syncBatch();
      syncLr();
      form.elements.norm_pix_loss.checked = d.norm_pix_loss;
      form.elements.img_size.value = d.img_size;
    });

    function clearErrors() {
      els.error.hidden = true;
      els.error.textContent = "";
      form.querySelectorAll("[aria-invalid]").forEach((n) => n.removeAttribute("aria-invalid"));
    }

    function showError(message, fields = []) {
      els.error.textContent = message;
      els.error.hidden = false;
      for (const name of fields) {
        const input = form.elements[name];
        if (input && input.setAttribute) input.setAttribute("aria-invalid", "true");
      }
    }

    const LABELS = { epochs: "Epochs", batch_size: "Batch size", seed: "Seed", img_size: "Image size", blr: "Base lr", gpus: "GPUs" };

    function readForm() {
      const problems = [];
      const bad = [];
      const number = (name, integer) => {
        const input = form.elements[name];
        if (input.value.trim() === "") return null;
        const value = Number(input.value);
        if (!input.checkValidity() || !isFinite(value) || (integer && !Number.isInteger(value))) {
          const why = input.validity.rangeOverflow ? `at most ${input.max}${name === "batch_size" ? " (the dataset's size)" : ""}`
            : input.validity.rangeUnderflow ? `at least ${input.min}` : input.validationMessage || "enter a valid number";
          problems.push(`${LABELS[name]}: ${why}.`);
          bad.push(name);
        }
        return value;
      };
      const body = {
        dataset: els.dataset.value,
        recipe: els.recipe.value,
        model: form.elements.model.value,
        mask_strategy: strategy(),
        mask_ratio: Number(els.ratio.value) / 100,
        epochs: number("epochs", true),
        batch_size: number("batch_size", true),
        seed: number("seed", true) ?? 0,
        norm_pix_loss: form.elements.norm_pix_loss.checked,
        img_size: number("img_size", true),
        blr: number("blr", false),
        gpus: number("gpus", true),
        init_from: form.elements.init_from.value || null,
      };
      // from a checkpoint, its architecture is used unless the user picked another model
      if (body.init_from && body.model === config.defaults.model) delete body.model;
      for (const key of Object.keys(body)) if (body[key] === null) delete body[key];
      return { body, problems, bad };
    }

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearErrors();
      const { body, problems, bad } = readForm();
      if (problems.length) {
        showError(problems.join(" "), bad);
        return;
      }
      els.submit.disabled = true;
      els.status.textContent = "Queueing…";
      try {
        const job = await api("/api/jobs", {
          method: "POST", body: JSON.stringify(body),
          headers: { "Content-Type": "application/json", Accept: "application/json" },
        });
        highlight = job.id;
        els.status.replaceChildren("Queued ", el("a", { href: job.links.page, text: job.id }), ".");
        poll.now();
      } catch (err) {
        els.status.textContent = "";
        const fields = ((err.body && err.body.fields) || []).map((f) => f.field.split(".")[0]);
        showError(err.message, fields);
      } finally {
        els.submit.disabled = false;
      }
    });
  }

  // ================================================================== /train/jobs/<id>
  function jobPage() {
    let job = config.job;
    const base = job.links.self;
    const els = {
      state: $("#job-state"), cancel: $("#cancel"), retry: $("#retry"), use: $("#use-model"),
      actionError: $("#action-error"), jobError: $("#job-error"), note: $("#job-note"),
      progress: $("#progress"), bar: $("#progress-bar"), step: $("#s-step"), pct: $("#s-progress"),
      eta: $("#s-eta"), loss: $("#s-loss"), attempt: $("#s-attempt"), worker: $("#s-worker"),
      lossChart: $("#chart-loss"), lrChart: $("#chart-lr"), curvesEmpty: $("#curves-empty"),
      snapshot: $("#snapshot"), snapImg: $("#snapshot-img"), snapStep: $("#snap-step"),
      strip: $("#snap-strip"), snapEmpty: $("#snap-empty"), logs: $("#logs"), events: $("#events"),
    };
    const rows = new Map(); // step -> metrics row
    let lastStep = null;
    let shownSnapshot = null;
    let pinnedSnapshot = null;
    let finalRefreshes = 0;

    function renderJob(j) {
      job = { ...job, ...j, events: j.events || job.events };
      const label = stateLabel(job);
      els.state.textContent = label;
      els.state.className = `state state-${label}`;
      const value = Math.round((job.progress || 0) * 100);
      els.progress.setAttribute("aria-valuenow", String(value));
      els.progress.classList.toggle("active", job.state === "running");
      els.bar.style.width = `${value}%`;
      els.bar.className = `bar bar-${job.state}`;
      els.step.textContent = job.total_steps ? `${job.step} / ${job.total_steps}` : String(job.step || 0);
      els.pct.textContent = pct(job.progress);
      els.eta.textContent = job.state === "running" ? duration(job.eta_s) : job.state === "queued" ? "waiting for a worker" : "–";
      els.loss.textContent = fmtLoss(job.loss);
      els.attempt.textContent = `${job.attempts} of ${job.max_attempts}`;
      els.worker.textContent = job.worker || "–";
      els.cancel.hidden = !(job.state === "queued" || (job.state === "running" && !job.cancel_requested));
      els.retry.hidden = !(job.state === "failed" || job.state === "cancelled");
      els.use.hidden = !(job.state === "succeeded" && job.checkpoint);
      if (job.checkpoint) {
        els.use.href = `/?model=${encodeURIComponent(job.checkpoint)}`;
        els.use.title = `Open the Reconstruct page with checkpoint “${job.checkpoint}”`;
      }

      els.jobError.hidden = !(job.state === "failed" && job.error);
      if (!els.jobError.hidden) els.jobError.textContent = `Failed: ${job.error}`;
      let note = "";
      if (job.state === "succeeded") note = `Done in ${duration((job.finished || 0) - (job.started || 0))}. Its model is checkpoint “${job.checkpoint}” on the Reconstruct page.`;
      else if (job.state === "running" && job.cancel_requested) note = "Cancelling: the worker stops after its current step and keeps the checkpoint.";
      else if (job.stale) note = "The worker running this job stopped responding; another worker will resume it from its last checkpoint.";
      else if (job.state === "queued" && job.error) note = `Waiting to resume. ${job.error}`;
      else if (job.state === "cancelled") note = "Cancelled. Retry continues from the last checkpoint.";
      els.note.hidden = !note;
      els.note.textContent = note;
      if (job.events) renderEvents(job.events);
    }

    function renderEvents(events) {
      els.events.replaceChildren(...events.map((e) => el("li", {},
        el("time", { text: clock(e.at) }), " ",
        el("strong", { text: e.event.replace(/_/g, " ") }),
        e.detail ? el("span", { class: "sub", text: ` ${e.detail}` }) : null,
        e.worker ? el("span", { class: "sub", text: ` (${e.worker})` }) : null)));
    }

    // -- charts
    const plotReady = () => window.Plotly && typeof window.Plotly.react === "function";
    function chartLayout(title) {
      return {
        title: { text: title, font: { size: 13 }, x: 0, xanchor: "left" },
        margin: { l: 64, r: 12, t: 30, b: 38 }, height: 240,
        font: { family: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 12, color: "#1c2330" },
        xaxis: { title: { text: "step" }, gridcolor: "#eef0f3", zeroline: false },
        yaxis: { gridcolor: "#eef0f3", zeroline: false, exponentformat: "e" },
        paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "#fff", showlegend: false,
      };
    }
    function drawCharts() {
      if (!rows.size) return;
      els.curvesEmpty.hidden = true;
      if (!plotReady()) {
        els.curvesEmpty.hidden = false;
        els.curvesEmpty.textContent = "plotly.js did not load, so the curves cannot be drawn.";
        return;
      }
      const data = [...rows.values()].sort((a, b) => a.step - b.step);
      const steps = data.map((r) => r.step);
      const opts = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["lasso2d", "select2d"] };
      Plotly.react(els.lossChart, [{
        x: steps, y: data.map((r) => r.loss ?? null), mode: "lines", line: { color: "#1f4e8c", width: 2 },
        hovertemplate: "step %{x}<br>loss %{y:.4f}<extra></extra>",
      }], chartLayout("Loss (masked patches)"), opts);
      Plotly.react(els.lrChart, [{
        x: steps, y: data.map((r) => r.lr ?? null), mode: "lines", line: { color: "#16a37f", width: 2 },
        hovertemplate: "step %{x}<br>lr %{y:.3e}<extra></extra>",
      }], chartLayout("Learning rate (warmup, then cosine)"), opts);
    }

    // -- snapshots
    function showSnapshot(snap) {
      shownSnapshot = snap;
      els.snapshot.hidden = false;
      els.snapEmpty.hidden = true;
      if (els.snapImg.getAttribute("src") !== snap.url) els.snapImg.src = snap.url;
      els.snapStep.textContent = `step ${snap.step}`;
      els.strip.querySelectorAll("button").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.step === String(snap.step))));
    }
    function renderSnapshots(snaps) {
      if (!snaps.length) return;
      const known = els.strip.childElementCount;
      if (known !== snaps.length) {
        els.strip.replaceChildren(...snaps.map((s) => el("li", {}, (() => {
          const b = el("button", { type: "button", class: "snap-thumb", "data-step": String(s.step), title: `step ${s.step}` },
            el("span", { text: String(s.step) }));
          b.addEventListener("click", () => {
            pinnedSnapshot = s.step === snaps[snaps.length - 1].step ? null : s;
            showSnapshot(s);
          });
          return b;
        })())));
      }
      const latest = snaps[snaps.length - 1];
      showSnapshot(pinnedSnapshot || latest);
    }

    async function refreshMetrics() {
      const since = lastStep === null ? "" : `?since_step=${lastStep}`;
      const m = await api(`${base}/metrics${since}`);
      // A resumed attempt rewrites the lines after its checkpoint; exact resume makes them equal.
      for (const r of m.metrics) rows.set(r.step, r);
      if (m.metrics.length) {
        lastStep = Math.max(...rows.keys());
        drawCharts();
      }
      renderSnapshots(m.snapshots);
      return m.job;
    }

    async function refreshLogs() {
      const l = await api(`${base}/logs?lines=200`);
      if (!l.lines.length) return;
      const first = !els.logs.dataset.filled;
      const atBottom = els.logs.scrollHeight - els.logs.scrollTop - els.logs.clientHeight < 24;
      els.logs.textContent = l.lines.join("\n");
      els.logs.dataset.filled = "1";
      if (first || atBottom) els.logs.scrollTop = els.logs.scrollHeight;
    }

    let cycle = 0;
    const poll = poller(async () => {
      const j = await refreshMetrics();
      const changed = j.state !== job.state || j.attempts !== job.attempts || j.cancel_requested !== job.cancel_requested;
      renderJob(j);
      if (changed || cycle % 2 === 0) {
        const [full] = await Promise.all([api(base), refreshLogs()]);
        renderJob(full);
      }
      cycle += 1;
      if (FINAL.has(job.state)) {
        finalRefreshes += 1;
        return finalRefreshes < 2; // one more round picks up the final snapshot and log lines
      }
      finalRefreshes = 0;
      return true;
    }, 1500);

    async function act(url, button) {
      els.actionError.hidden = true;
      button.disabled = true;
      try {
        renderJob(await api(url, { method: "POST" }));
        finalRefreshes = 0;
        poll.now();
      } catch (err) {
        els.actionError.textContent = err.message;
        els.actionError.hidden = false;
      } finally {
        button.disabled = false;
      }
    }
    els.cancel.addEventListener("click", () => act(job.links.cancel, els.cancel));
    els.retry.addEventListener("click", () => act(job.links.retry, els.retry));

    renderJob(job);
    // plotly.js is deferred like this script; draw once it is there
    window.addEventListener("load", drawCharts);
    poll.start();
  }

  if (config.job) jobPage();
  else trainPage();
})();
