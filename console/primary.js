/* tdgl primary console: tracked tables, the change log's tail, API keys, push targets.
 * Read-only; uses only GET /api/admin/... (docs/api.md). Refreshes every 5 s. */
"use strict";

(() => {
  const C = Console, el = C.el;
  const enc = encodeURIComponent;
  let timer = null;

  function bytes(n) {
    if (n === null || n === undefined) return "—";
    const u = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : String(n)) + " " + u[i];
  }

  /* ---- tables, change log size and rate, purge horizon ---- */
  C.route(/^\/$/, async (box) => {
    const o = await C.api("/api/admin/overview");
    box.append(C.heading("Tracked tables"));
    const stale = o.tables.filter((t) => t.trigger !== "ok");
    if (stale.length)
      box.append(C.message("error", `${stale.length} table${stale.length > 1 ? "s need" : " needs"} ` +
        "`tdgl-primary track` again: " + stale.map((t) => t.table).join(", ")));
    const rows = o.tables.map((t) => el("tr", { class: t.trigger !== "ok" ? "stale" : "" },
      el("th", { scope: "row" }, t.table),
      el("td", {}, t.pk_columns),
      el("td", {}, t.status_column || el("span", { class: "muted" }, "none")),
      el("td", {}, t.attach_columns || el("span", { class: "muted" }, "none")),
      el("td", {}, t.trigger === "ok" ? C.badge("ok", "success") :
                   C.badge(t.trigger === "stale" ? "STALE: run track again" : "MISSING", "failed")),
      el("td", {}, el("a", { href: "#/log?table=" + enc(t.table) }, "changes"))));
    box.append(C.table(["Table", "Primary key", "Status column", "Attachments", "Capture", ""], rows,
                       { empty: "No tracked tables: `tdgl-primary track TABLE`." }));
    box.append(el("h2", {}, "Change log"), el("dl", { class: "meta" },
      el("dt", {}, "Size"), el("dd", {}, (o.rows_estimate === null ? "not analyzed yet" :
                                          `${o.rows_estimate} rows (estimate)`) + `, ${bytes(o.bytes)}`),
      el("dt", {}, "Ids"), el("dd", {}, o.newest_id === null ? "empty" : `${o.oldest_id} – ${o.newest_id}`),
      el("dt", {}, "Rate"), el("dd", {}, `${o.last_minute} changes in the last minute` +
                                         (o.last_minute >= 100000 ? " (at least)" : "")),
      el("dt", {}, "Oldest kept"), el("dd", {}, C.time(o.oldest_at)),
      el("dt", {}, "Newest"), el("dd", {}, C.time(o.newest_at))));
    box.append(el("h2", {}, "Purge"), el("dl", { class: "meta" },
      el("dt", {}, "Horizon"), el("dd", {}, `transactions below ${o.purged_below_txid} purged ` +
                                            "(a cursor needing them gets 410)"),
      el("dt", {}, "Last purge"), el("dd", {}, C.time(o.last_purge_at)),
      el("dt", {}, "Current xmin"), el("dd", {}, String(o.current_txid))));
  });

  /* ---- the change log's tail ---- */
  C.route(/^\/log$/, async (box, m, q) => {
    const params = new URLSearchParams();
    for (const k of ["table", "before"]) if (q.get(k)) params.set(k, q.get(k));
    params.set("limit", "50");
    const page = await C.api("/api/admin/log?" + params);
    box.append(C.heading("Change log"));
    const form = el("form", { class: "filters", role: "search", "aria-label": "Filter the log" },
      C.field("Table", el("input", { name: "table", type: "text", value: q.get("table") || "" })),
      el("div", { class: "field" }, el("button", { type: "submit" }, "Filter")));
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const t = new FormData(form).get("table");
      C.go("/log" + (t ? "?table=" + enc(t) : ""));
    });
    box.append(form);
    const rows = page.changes.map((ch) => el("tr", {},
      el("td", {}, String(ch.id)),
      el("td", {}, C.time(ch.changed_at)),
      el("td", {}, ch.table),
      el("td", {}, ch.op),
      el("td", {}, C.long(C.keyText(ch.pk), 40), ch.old_pk ? el("span", { class: "small" }, " from " + C.keyText(ch.old_pk)) : ""),
      el("td", { class: "snapshot" }, C.long(ch.row, 100)),
      el("td", { class: "num" }, String(ch.txid))));
    box.append(C.table(["Id", "Captured", "Table", "Op", "Key", "Snapshot", "Txid"], rows,
                       { empty: "No changes.", class: "log" }));
    const nav = el("nav", { class: "pager", "aria-label": "Log pages" });
    if (q.get("before"))
      nav.append(el("a", { href: "#/log" + (q.get("table") ? "?table=" + enc(q.get("table")) : "") }, "« Newest"));
    if (page.next_before !== null) {
      const older = new URLSearchParams(params); older.set("before", page.next_before); older.delete("limit");
      nav.append(el("a", { href: "#/log?" + older, rel: "next" }, "Older »"));
    }
    box.append(nav);
  });

  /* ---- API keys ---- */
  C.route(/^\/keys$/, async (box) => {
    const keys = await C.api("/api/admin/keys");
    box.append(C.heading("API keys"),
      el("p", {}, "One key per replica. Behind: changes of transactions at or after the key's " +
                  "cursor horizon (some may already be served), and since when."));
    const rows = keys.map((k) => el("tr", { class: k.revoked_at ? "revoked" : "" },
      el("th", { scope: "row" }, el("div", { class: "stack" }, k.label || el("span", { class: "muted" }, "(no label)"),
         el("code", { class: "small" }, k.key))),
      el("td", {}, k.revoked_at ? C.badge("revoked", "failed") : C.badge("active", "success")),
      el("td", {}, k.last_seen ? C.time(k.last_seen) : el("span", { class: "muted" }, "never")),
      el("td", { class: "num" }, k.cursor_xmin === null ? "—" : String(k.cursor_xmin)),
      el("td", {}, k.cursor_xmin === null ? "—" : el("div", { class: "stack" },
         `${k.behind}${k.behind_capped ? "+" : ""} changes`,
         k.behind_since ? el("span", { class: "small" }, "oldest ", C.time(k.behind_since)) : null)),
      el("td", {}, C.time(k.created_at))));
    box.append(C.table(["Key", "Status", "Last seen", "Cursor horizon (txid)", "Behind", "Created"], rows,
                       { empty: "No API keys: `tdgl-primary keygen --label NAME`." }));
  });

  /* ---- push targets ---- */
  C.route(/^\/push$/, async (box) => {
    const targets = await C.api("/api/admin/push");
    box.append(C.heading("Push targets"));
    const rows = targets.map((t) => {
      const d = t.delivery;
      let st = el("span", { class: "muted" }, t.enabled ? "no notification sent yet" : "disabled");
      if (d && d.last_attempt_at)
        st = el("div", { class: "stack" },
          el("span", {}, d.failures ? C.badge("failing", "failed") : C.badge("delivered", "success"),
             " ", d.last_result || ""),
          el("span", { class: "small" }, "last attempt ", C.time(d.last_attempt_at)),
          d.failures ? el("span", { class: "small" }, `${d.failures} failed in a row; last delivered `,
                          C.time(d.last_delivered_at)) : null);
      return el("tr", {},
        el("td", {}, String(t.id)),
        el("td", {}, C.long(t.url, 60)),
        el("td", {}, t.enabled ? "yes" : "no"),
        el("td", {}, st),
        el("td", {}, C.time(t.created_at)));
    });
    box.append(C.table(["Id", "URL", "Enabled", "Last delivery", "Added"], rows,
                       { empty: "No push targets: `tdgl-primary push add URL --secret S`." }));
  });

  function live(on) {
    const s = document.getElementById("live");
    s.textContent = on ? "auto-refresh" : "paused";
    s.className = "live " + (on ? "on" : "off");
  }

  C.start({
    role: "primary",
    verifyPath: "/api/admin/overview",
    onSignedIn: () => {
      clearInterval(timer);
      live(true);
      /* the first page of a view follows the log; older pages stay put */
      timer = setInterval(() => {
        if (!C.token()) return;
        if (!/before=/.test(location.hash)) C.refreshIfIdle();
      }, 5000);
    },
    onSignOut: () => { clearInterval(timer); live(false); },
  });
})();
