// API keys on the page: when the server answers 401 the page asks for a key, keeps it for this
// tab only (sessionStorage), sends it as a Bearer header, and offers to forget it.
// Other scripts use `window.verbatimKeys`: `fetch()` for requests, `headers()` for XHR, and
// `withToken(url)` for what a browser opens without headers (download links, EventSource,
// <audio>): those routes take the key as an `access_token` parameter.
"use strict";

(() => {
  const STORAGE = "verbatim.apiKey";
  let pending = null;  // one question at a time, however many requests were refused

  const token = () => sessionStorage.getItem(STORAGE) || "";
  const headers = () => (token() ? { Authorization: `Bearer ${token()}` } : {});

  function withToken(url) {
    if (!token()) return url;
    const target = new URL(url, location.href);
    target.searchParams.set("access_token", token());
    return target.origin === location.origin ? target.pathname + target.search : target.href;
  }

  function forget() {
    sessionStorage.removeItem(STORAGE);
    showForget();
  }

  function element(tag, props = {}, ...children) {
    const node = Object.assign(document.createElement(tag), props);
    node.append(...children);
    return node;
  }

  function dialog() {
    let box = document.getElementById("key-dialog");
    if (box) return box;
    const input = element("input", {
      id: "key-input", type: "password", autocomplete: "off", spellcheck: false, required: true,
    });
    box = element("dialog", { id: "key-dialog", className: "card key-dialog" },
      element("form", { method: "dialog" },
        element("h2", { id: "key-title", textContent: "API key needed" }),
        element("p", { id: "key-reason", className: "hint" }),
        element("label", { htmlFor: "key-input", textContent: "API key" }), input,
        element("div", { className: "key-actions" },
          element("button", { type: "submit", value: "use", className: "button primary",
            textContent: "Use key" }),
          element("button", { type: "submit", value: "cancel", className: "button secondary",
            textContent: "Cancel", formNoValidate: true }))));
    box.setAttribute("aria-labelledby", "key-title");
    document.body.append(box);
    return box;
  }

  // Resolves true once a key was entered, false when the person cancels.
  function ask(refused) {
    if (pending) return pending;
    const box = dialog();
    box.querySelector("#key-reason").textContent = refused
      ? "The server refused that key (unknown or revoked). Enter another one."
      : "This server asks for an API key. It is kept in this tab until you close it.";
    box.querySelector("#key-input").value = "";
    pending = new Promise((resolve) => {
      box.addEventListener("close", () => {
        const value = box.querySelector("#key-input").value.trim();
        const given = box.returnValue === "use" && value !== "";
        if (given) sessionStorage.setItem(STORAGE, value);
        pending = null;
        showForget();
        resolve(given);
      }, { once: true });
    });
    box.returnValue = "";
    box.showModal();
    return pending;
  }

  // fetch() with the key; a 401 asks for one and tries again (the 401 is returned on cancel).
  async function keyedFetch(url, options = {}) {
    for (;;) {
      const sent = token();
      const response = await fetch(url, { ...options, headers: { ...options.headers, ...headers() } });
      if (response.status !== 401 || !(await ask(Boolean(sent)))) return response;
    }
  }

  function showForget() {
    let button = document.getElementById("forget-key");
    if (!button) {
      button = element("button", { id: "forget-key", type: "button", className: "link",
        textContent: "Forget API key" });
      button.addEventListener("click", forget);
      document.querySelector(".footer")?.append(" · ", button);
    }
    button.hidden = !token();
    if (button.previousSibling?.nodeType === Node.TEXT_NODE) {
      button.previousSibling.textContent = token() ? " · " : "";
    }
  }

  window.verbatimKeys = { token, headers, withToken, fetch: keyedFetch, ask, forget };
  document.addEventListener("DOMContentLoaded", showForget);
})();
