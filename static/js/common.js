// Helpers every page script uses, loaded before them by base.html: window.MAELab.api (JSON
// requests with the server's error message) and window.MAELab.el (build DOM nodes). Plain JS.
(() => {
  "use strict";

  class ApiError extends Error {
    constructor(message, status, body) {
      super(message);
      this.status = status;
      this.body = body;
    }
  }

  // fetch + JSON; a non-2xx answer throws ApiError carrying the server's `message`.
  async function api(url, options = {}) {
    const headers = { Accept: "application/json", ...(options.headers || {}) };
    const resp = await fetch(url, { ...options, headers });
    const body = resp.status === 204 ? null : await resp.json().catch(() => null);
    if (!resp.ok) {
      throw new ApiError((body && body.message) || `the server answered ${resp.status}`, resp.status, body);
    }
    return body;
  }

  // el("div", {class: "x", text: "y", hidden: true}, child...): null/undefined/false attributes
  // and children are skipped, so optional parts can be written inline.
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children) {
      if (child !== null && child !== undefined && child !== false) node.append(child);
    }
    return node;
  }

  window.MAELab = { ApiError, api, el };
})();
