// Models page: one card per checkpoint (GET /api/checkpoints), downloads with a progress bar
// that survives a reload (the server keeps the state), cancel, delete, measure, export, upload.
(() => {
  "use strict";

  const config = JSON.parse(document.getElementById("page-config").textContent);
  const list = document.getElementById("model-cards");
  const ACTIVE = new Set(["queued", "downloading", "converting"]);
  let timer = null;

  const { api, el } = window.MAELab;

  const mb = (bytes) => (bytes == null ? "size unknown" : bytes >= 1e9
    ? `${(bytes / 1e9).toFixed(2)} GB` : `${(bytes / 1e6).toFixed(1)} MB`);

  function fact(label, value) {
    return value ? el("div", { class: "fact" }, el("dt", { text: label }), el("dd", { text: value })) : null;
  }

  function progressView(download) {
    const wrap = el("div", { class: "download-progress" });
    const bar = el("progress", { max: "1", "aria-label": "download progress" });
    if (download.progress != null) bar.value = download.progress;
    const parts = [`${mb(download.bytes_done)} of ${mb(download.bytes_total)}`];
    if (download.rate_bps) parts.push(`${mb(download.rate_bps)}/s`);
    if (download.eta_s != null && download.state === "downloading") parts.push(`ETA ${Math.ceil(download.eta_s)} s`);
    if (download.state === "converting") parts.push("checking and converting");
    wrap.append(bar, el("span", { class: "progress-text", text: parts.join(" · ") }));
    return wrap;
  }

  function action(label, handler, primary = false) {
    const button = el("button", { class: primary ? "button button-primary" : "button", type: "button", text: label });
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        await handler();
      } catch (err) {
        showError(button.closest(".model-card"), err.message);
      } finally {
        button.disabled = false;
      }
    });
    return button;
  }

  function showError(card, message) {
    if (!card) return;
    let box = card.querySelector(".card-error");
    if (!box) card.append(box = el("p", { class: "card-error", role: "alert" }));
    box.textContent = message;
  }

  function renderCard(card) {
    const node = el("li", { class: "card model-card", "data-id": card.id, "data-kind": card.kind, "data-state": card.state });
    node.append(el("div", { class: "card-head" }, el("h3", { text: card.id }),
      el("span", { class: `badge badge-${card.kind}`, text: card.default ? "default" : card.kind })));
    node.append(el("p", { class: "arch", text: card.summary.architecture }));
    const quality = card.samples_quality;
    const facts = el("dl", { class: "facts" },
      fact("What for", card.good_for || (card.can_reconstruct ? "reconstruction and evaluation" : "")),
      fact("Size", card.size_bytes != null ? mb(card.size_bytes) : (card.kind === "catalog" ? "shown once the download starts" : "")),
      fact("Licence", card.licence),
      fact("Samples PSNR", quality ? `${quality.masked_psnr_db.toFixed(2)} dB masked-patch PSNR on the ${quality.images} bundled photos (75% random, measured here)` : ""),
      fact("Trained on", card.summary.training_data));
    node.append(facts);
    if (card.kind === "catalog" && card.has_decoder === false) {
      node.append(el("p", { class: "note", text: "No decoder: cannot reconstruct, usable for evaluation." }));
    }
    if (card.error) node.append(el("p", { class: "card-error", role: "alert", text: card.error }));
    if (card.download && ACTIVE.has(card.state)) node.append(progressView(card.download));
    const actions = el("div", { class: "actions" });
    const id = encodeURIComponent(card.id);
    if (card.kind === "catalog") {
      if (ACTIVE.has(card.state)) {
        actions.append(action("Cancel", () => api(`/api/checkpoints/${id}/cancel`, { method: "POST" }).then(refresh)));
      } else {
        const label = card.state === "available" ? "Download" : "Resume download";
        actions.append(action(label, () => api(`/api/checkpoints/${id}/download`, { method: "POST" }).then(refresh), true));
      }
    } else {
      if (card.can_reconstruct) {
        actions.append(el("a", { class: "button button-primary", href: `/?model=${id}`, text: "Reconstruct with it" }));
      }
      if (card.can_reconstruct) {
        actions.append(action(quality ? "Measure again" : "Measure PSNR",
          () => api(`/api/checkpoints/${id}/measure`, { method: "POST" }).then(refresh)));
      }
      if (card.exportable) {
        for (const [to, label] of [["hf", "transformers"], ["timm", "timm"], ["official", "official .pth"]]) {
          if (to === "hf" && !card.can_reconstruct) continue;
          actions.append(el("a", { class: "button", href: `/api/checkpoints/${id}/export?to=${to}`, download: "", text: `Export: ${label}` }));
        }
      }
      if (card.deletable) {
        actions.append(action("Delete", async () => {
          if (!window.confirm(`Delete ${card.id}? This removes its file from the server.`)) return;
          await api(`/api/checkpoints/${id}`, { method: "DELETE" });
          await refresh();
        }));
      }
    }
    node.append(actions);
    return node;
  }

  function render(cards) {
    list.replaceChildren(...cards.map(renderCard));
    clearTimeout(timer);
    if (cards.some((c) => ACTIVE.has(c.state))) timer = setTimeout(refresh, 700);
  }

  async function refresh() {
    const body = await api("/api/checkpoints");
    render(body.checkpoints);
  }

  document.getElementById("upload-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const status = document.getElementById("upload-status");
    const file = form.elements.file.files[0];
    if (!file) return;
    if (file.size > config.maxUploadBytes) {
      status.textContent = `The file is ${mb(file.size)}; this server accepts at most ${mb(config.maxUploadBytes)}.`;
      return;
    }
    const data = new FormData();
    data.append("file", file);
    if (form.elements.config.files[0]) data.append("config", form.elements.config.files[0]);
    if (form.elements.name.value) data.append("name", form.elements.name.value);
    status.textContent = `Uploading ${file.name} (${mb(file.size)})…`;
    try {
      const card = await api("/api/checkpoints", { method: "POST", body: data });
      status.textContent = `Published ${card.id}.`;
      form.reset();
      await refresh();
    } catch (err) {
      status.textContent = `Refused: ${err.message}`;
    }
  });

  render(config.cards);
})();
