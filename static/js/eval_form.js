// Train page: the evaluation-job form (k-NN, linear probe, fine-tuning). Every field, bound,
// default and help text comes from the server's field tables (page-config `eval`); nothing here
// repeats a limit. Posts to /api/jobs with `kind`; the job list (train.js) picks the job up.
(() => {
  "use strict";

  const form = document.getElementById("eval-form");
  if (!form) return;
  const { api, el } = window.MAELab;
  const config = JSON.parse(document.getElementById("page-config").textContent).eval || {};
  const $ = (id) => document.getElementById(id);
  const KIND_LABELS = { knn: "k-NN (frozen features)", linprobe: "Linear probe", finetune: "Fine-tune" };
  const fieldsBox = $("eval-fields"), error = $("eval-error"), status = $("eval-status");

  function fill(select, items, label) {
    select.replaceChildren(...items.map((item) => new Option(label(item), item.id ?? item)));
  }

  fill($("e-kind"), config.kinds || [], (k) => KIND_LABELS[k] || k);
  fill($("e-checkpoint"), config.checkpoints || [], (c) => c);
  fill($("e-dataset"), config.datasets || [], (d) => `${d.id} (${d.num_classes} classes, ${d.num_images} images)`);
  if (!(config.datasets || []).length) {
    $("help-e-dataset").textContent = "No labelled dataset yet: put a folder with one sub-folder per class under a data root.";
    $("e-submit").disabled = true;
  }

  const label = (name, lim) => name.replace(/_/g, " ") + (lim.unit ? ` (${lim.unit})` : "");

  // One input per field of the chosen protocol, from its limits (type, bounds, default, help).
  function input(name, lim) {
    const id = `e-${name}`;
    let control;
    if (lim.choices) {
      control = el("select", { id, name });
      if (lim.default === null) control.append(new Option("default", ""));
      for (const c of lim.choices) control.append(new Option(c, c));
      control.value = lim.default ?? "";
    } else if (lim.type === "bool") {
      control = el("input", { id, name, type: "checkbox", checked: Boolean(lim.default) });
    } else if (lim.type === "int" || lim.type === "float") {
      control = el("input", { id, name, type: "number", step: String(lim.step), inputmode: "decimal",
        placeholder: lim.default === null ? "recipe" : null });
      if (lim.min !== null) control.min = String(lim.exclusiveMin && lim.step !== "any" ? lim.min + lim.step : lim.min);
      if (lim.max !== null) control.max = String(lim.exclusiveMax && lim.step !== "any" ? lim.max - lim.step : lim.max);
      if (lim.default !== null) control.value = String(lim.default);
    } else {
      control = el("input", { id, name, type: "text", placeholder: lim.default === null ? "default" : null });
      if (lim.default !== null) control.value = String(lim.default);
    }
    control.dataset.type = lim.type;
    return el("div", { class: "field" }, el("label", { for: id, text: label(name, lim) }), control,
      lim.help ? el("p", { class: "help", text: lim.help }) : null);
  }

  function renderFields() {
    const fields = (config.fields || {})[$("e-kind").value] || {};
    fieldsBox.replaceChildren(...Object.entries(fields).map(([name, lim]) => input(name, lim)));
  }
  $("e-kind").addEventListener("change", renderFields);
  renderFields();

  function readForm() {
    const body = { kind: $("e-kind").value, checkpoint: $("e-checkpoint").value, dataset: $("e-dataset").value };
    const problems = [];
    for (const control of fieldsBox.querySelectorAll("input, select")) {
      const type = control.dataset.type;
      if (type === "bool") { body[control.name] = control.checked; continue; }
      if (control.value.trim() === "") continue;
      if (type === "int" || type === "float") {
        const value = Number(control.value);
        if (!control.checkValidity() || !isFinite(value) || (type === "int" && !Number.isInteger(value))) {
          problems.push(`${control.name}: ${control.validity.rangeOverflow ? `at most ${control.max}`
            : control.validity.rangeUnderflow ? `at least ${control.min}` : "enter a valid number"}.`);
          control.setAttribute("aria-invalid", "true");
        }
        body[control.name] = value;
      } else {
        body[control.name] = control.value;
      }
    }
    return { body, problems };
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    form.querySelectorAll("[aria-invalid]").forEach((n) => n.removeAttribute("aria-invalid"));
    const { body, problems } = readForm();
    if (problems.length) {
      error.textContent = problems.join(" ");
      error.hidden = false;
      return;
    }
    $("e-submit").disabled = true;
    status.textContent = "Queueing…";
    try {
      const job = await api("/api/jobs", { method: "POST", body: JSON.stringify(body),
        headers: { "Content-Type": "application/json" } });
      status.replaceChildren("Queued ", el("a", { href: job.links.page, text: job.id }), ".");
    } catch (err) {
      status.textContent = "";
      error.textContent = err.message;
      error.hidden = false;
    } finally {
      $("e-submit").disabled = false;
    }
  });
})();
