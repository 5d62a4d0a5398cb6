/* tdgl console, shared by both servers' pages: DOM building (text only: every value from the
 * server goes in with textContent, never as HTML), the admin token (this tab's
 * sessionStorage only, sent as the Bearer header), API calls, times, a hash router and the
 * Server-Sent Events reader. No framework, no network beyond this origin's JSON API. */
"use strict";

const Console = (() => {
  let role = "replica";
  let tokenKey = "tdgl-token";
  const views = [];          // {pattern: RegExp, render(main, match, params)}
  let onSignedIn = null, verifyPath = "/api/status";
  let renderSeq = 0;

  /* el("td", {class: "x", title: "y"}, "text", child...): strings become text nodes. */
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : String(v));
    }
    for (const kid of kids.flat()) {
      if (kid === null || kid === undefined || kid === false) continue;
      e.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    }
    return e;
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  /* ---- token ---- */
  const token = () => sessionStorage.getItem(tokenKey);
  function signOut(message) {
    sessionStorage.removeItem(tokenKey);
    showSignIn(message);
  }

  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  /* Calls the JSON API with the token; 401 signs out. Returns the parsed body. */
  async function api(path, opts) {
    const o = Object.assign({ method: "GET" }, opts || {});
    const headers = { "Authorization": "Bearer " + token() };
    let body;
    if (o.json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(o.json);
    }
    const r = await fetch(path, { method: o.method, headers, body, cache: "no-store",
                                  credentials: "omit", redirect: "error" });
    let data = null;
    try { data = await r.json(); } catch (e) { data = null; }
    if (r.status === 401) {
      signOut("The server refused the admin token: sign in again.");
      throw new ApiError(401, "unauthorized");
    }
    if (!r.ok) throw new ApiError(r.status, (data && data.error) || ("HTTP " + r.status));
    return data;
  }

  /* ---- values ---- */
  function parseTime(iso) {
    if (!iso) return null;
    const d = new Date(iso);
    return isNaN(d.getTime()) ? null : d;
  }
  function utcText(d) { return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC"); }
  /* <time>: the browser's zone shown, the UTC value on hover (title). */
  function time(iso) {
    const d = parseTime(iso);
    if (!d) return el("span", { class: "muted" }, iso ? String(iso) : "—");
    return el("time", { datetime: d.toISOString(), title: utcText(d) },
              d.toLocaleString(undefined, { year: "numeric", month: "2-digit", day: "2-digit",
                                            hour: "2-digit", minute: "2-digit", second: "2-digit" }));
  }
  function duration(s) {
    if (s === null || s === undefined) return "—";
    s = Math.round(Number(s));
    if (s < 120) return s + " s";
    if (s < 7200) return Math.round(s / 60) + " min";
    if (s < 172800) return Math.round(s / 3600) + " h";
    return Math.round(s / 86400) + " d";
  }
  /* A JSON value as text: strings as they are, the rest as JSON; null as NULL. */
  function valueText(v) {
    if (v === null || v === undefined) return null;
    return typeof v === "string" ? v : JSON.stringify(v);
  }
  /* Text cut at max characters, with a button showing the whole value (and back). */
  function long(v, max) {
    const text = valueText(v);
    max = max || 80;
    if (text === null) return el("span", { class: "null" }, "NULL");
    if (text.length <= max) return el("span", { class: "val" }, text);
    const span = el("span", { class: "val" }, text.slice(0, max) + "…");
    const btn = el("button", { type: "button", class: "link more", "aria-expanded": "false",
                                title: "Show the whole value (" + text.length + " characters)" },
                   "more");
    btn.addEventListener("click", () => {
      const open = btn.getAttribute("aria-expanded") === "true";
      span.textContent = open ? text.slice(0, max) + "…" : text;
      btn.textContent = open ? "more" : "less";
      btn.setAttribute("aria-expanded", open ? "false" : "true");
    });
    return el("span", { class: "long" }, span, " ", btn);
  }
  /* A key object {"id":7} as "id=7". */
  function keyText(pk) {
    if (pk === null || pk === undefined) return "—";
    if (typeof pk !== "object") return String(pk);
    return Object.entries(pk).map(([k, v]) => k + "=" + valueText(v)).join(", ");
  }
  function badge(text, kind) {
    return el("span", { class: "badge " + (kind || String(text).toLowerCase().replace(/\W+/g, "-")) },
              text);
  }

  /* ---- page pieces ---- */
  function table(headers, rows, opts) {
    const t = el("table", { class: (opts && opts.class) || "" },
      opts && opts.caption ? el("caption", {}, opts.caption) : null,
      el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, rows.length ? rows : el("tr", {},
        el("td", { colspan: headers.length, class: "empty" }, (opts && opts.empty) || "Nothing here."))));
    return el("div", { class: "table-wrap" }, t);
  }
  function message(kind, text) {
    return el("p", { class: "msg " + kind, role: kind === "error" ? "alert" : "status" }, text);
  }
  function heading(text) { return el("h1", { tabindex: "-1", id: "view-title" }, text); }
  function field(label, input) {
    const id = input.id || ("f-" + Math.random().toString(36).slice(2));
    input.id = id;
    return el("div", { class: "field" }, el("label", { for: id }, label), input);
  }
  /* A button that runs an async action, disabled meanwhile; errors shown in `out`. */
  function action(label, fn, opts) {
    const b = el("button", { type: "button", class: (opts && opts.class) || "",
                             title: opts && opts.title }, label);
    b.addEventListener("click", async () => {
      b.disabled = true;
      try { await fn(b); } catch (e) {
        if (e.status !== 401) flash("error", label + ": " + e.message);
      } finally { b.disabled = false; }
    });
    return b;
  }
  function flash(kind, text) {
    const box = document.getElementById("flash");
    clear(box);
    box.append(message(kind, text));
  }

  /* ---- routing ---- */
  function route(pattern, render) { views.push({ pattern, render }); }
  function currentHash() { return location.hash.replace(/^#/, "") || "/"; }
  function hashParams() {
    const h = currentHash(), q = h.indexOf("?");
    return new URLSearchParams(q >= 0 ? h.slice(q + 1) : "");
  }
  async function render(opts) {
    if (!token()) return showSignIn();
    const seq = ++renderSeq;
    const h = currentHash(), path = h.split("?")[0];
    const main = document.getElementById("main");
    for (const a of document.querySelectorAll("#nav a")) {
      const target = a.getAttribute("href").slice(1);
      const here = target === "/" ? path === "/" : path === target || path.startsWith(target + "/");
      if (here) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
    }
    for (const v of views) {
      const m = path.match(v.pattern);
      if (!m) continue;
      const box = el("div", { class: "view", "data-route": h });
      try {
        await v.render(box, m, hashParams());
      } catch (e) {
        if (e.status === 401) return;
        clear(box);
        box.append(heading("Error"), message("error", e.message));
      }
      if (seq !== renderSeq) return;       // a newer render won
      clear(main);
      main.append(box);
      if (!(opts && opts.quiet)) {
        clear(document.getElementById("flash"));
        const t = document.getElementById("view-title");
        if (t) t.focus({ preventScroll: true });
      }
      return;
    }
    clear(main);
    main.append(heading("Not found"), message("error", "No page " + path));
  }
  function go(hash) {
    if (location.hash === "#" + hash) render(); else location.hash = hash;
  }
  /* Re-renders the page in place; keeps focus and the flash message. */
  function refresh() { return render({ quiet: true }); }
  /* The same for live updates, unless the user is in the middle of something on the page
   * (typing in a field, reading a value opened with "more"). */
  function refreshIfIdle() {
    const a = document.activeElement;
    if (a && /^(INPUT|SELECT|TEXTAREA)$/.test(a.tagName)) return;
    if (document.querySelector('#main [aria-expanded="true"]')) return;
    render({ quiet: true });
  }

  /* ---- sign in ---- */
  function showSignIn(msg) {
    document.body.classList.add("signed-out");
    document.getElementById("signin").hidden = false;
    document.getElementById("app").hidden = true;
    const m = document.getElementById("signin-msg");
    clear(m);
    if (msg) m.append(message("error", msg));
    document.getElementById("token").focus();
  }
  function showApp() {
    document.body.classList.remove("signed-out");
    document.getElementById("signin").hidden = true;
    document.getElementById("app").hidden = false;
    if (onSignedIn) onSignedIn();
    render();
  }
  async function signIn(ev) {
    ev.preventDefault();
    const input = document.getElementById("token"), m = document.getElementById("signin-msg");
    const t = input.value.trim();
    clear(m);
    if (!t) { m.append(message("error", "Enter the admin token.")); return; }
    let r;
    try {
      r = await fetch(verifyPath, { headers: { "Authorization": "Bearer " + t },
                                    cache: "no-store", credentials: "omit" });
    } catch (e) {
      m.append(message("error", "Cannot reach the server: " + e.message));
      return;
    }
    if (r.status === 401 || r.status === 404) {
      m.append(message("error", "Wrong admin token: the server refused it."));
      input.select();
      return;
    }
    sessionStorage.setItem(tokenKey, t);
    input.value = "";
    showApp();
  }

  /* ---- Server-Sent Events over fetch (EventSource cannot send the Bearer header) ---- */
  function events(path, onEvent, onState) {
    let stopped = false, ctrl = null, delay = 1000;
    async function loop() {
      while (!stopped && token()) {
        ctrl = new AbortController();
        try {
          const r = await fetch(path, { headers: { "Authorization": "Bearer " + token(),
                                                   "Accept": "text/event-stream" },
                                        signal: ctrl.signal, cache: "no-store" });
          if (r.status === 401) { signOut("The server refused the admin token: sign in again."); return; }
          if (!r.ok || !r.body) throw new Error("HTTP " + r.status);
          onState(true);
          delay = 1000;
          const reader = r.body.getReader(), dec = new TextDecoder();
          let buf = "";
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            buf += dec.decode(value, { stream: true });
            let cut;
            while ((cut = buf.search(/\r?\n\r?\n/)) >= 0) {
              const block = buf.slice(0, cut);
              buf = buf.slice(cut).replace(/^\r?\n\r?\n/, "");
              let type = "message", data = "";
              for (const line of block.split(/\r?\n/)) {
                if (line.startsWith("event:")) type = line.slice(6).trim();
                else if (line.startsWith("data:")) data += line.slice(5).trim();
              }
              if (data) {
                let payload = null;
                try { payload = JSON.parse(data); } catch (e) { payload = null; }
                onEvent(type, payload);
              }
            }
          }
        } catch (e) {
          if (stopped) return;
        }
        onState(false);
        if (stopped) return;
        await new Promise((res) => setTimeout(res, delay));
        delay = Math.min(delay * 2, 15000);
      }
    }
    loop();
    return () => { stopped = true; if (ctrl) ctrl.abort(); };
  }

  function start(opts) {
    role = opts.role;
    tokenKey = "tdgl-" + role + "-token";
    verifyPath = opts.verifyPath;
    onSignedIn = opts.onSignedIn;
    document.getElementById("signin-form").addEventListener("submit", signIn);
    document.getElementById("signout").addEventListener("click", () => {
      if (opts.onSignOut) opts.onSignOut();
      signOut(null);
    });
    window.addEventListener("hashchange", () => render());
    if (token()) showApp(); else showSignIn();
  }

  return { el, clear, api, time, duration, valueText, long, keyText, badge, table, message,
           heading, field, action, flash, route, go, refresh, refreshIfIdle, render, events, start, token,
           parseTime };
})();
