/* tdgl replica console: overview, conflicts (side by side), sync log, runs, local edits, dry
 * run; live updates from GET /api/events. Uses only the documented admin API (docs/api.md). */
"use strict";

(() => {
  const C = Console, el = C.el;
  const enc = encodeURIComponent;
  let stopEvents = null, refreshTimer = null;

  function liveState(on) {
    const s = document.getElementById("live");
    s.textContent = on ? "live" : "offline";
    s.className = "live " + (on ? "on" : "off");
  }
  /* Any event re-renders the page shown (debounced), so new runs, conflicts and lag appear
   * without a reload. Pages that hold user input (dry run, a conflict being read) refresh too,
   * quietly: focus and the message stay. */
  function onEvent(type) {
    const s = document.getElementById("live");
    s.title = "Last event: " + type + " at " + new Date().toLocaleTimeString();
    if (location.hash.startsWith("#/dryrun")) return;
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(() => C.refreshIfIdle(), 250);
  }

  function sourceState(s) {
    const w = s.worker;
    if (!s.enabled) return C.badge("disabled", "muted");
    if (w && w.running) return C.badge(s.initial_sync_done ? "pulling" : "initial sync", "running");
    if (w && w.pending) return C.badge("queued", "running");
    if (w && w.backoff_s) return C.badge("retrying in " + C.duration(w.backoff_s), "failed");
    if (!s.initial_sync_done) return C.badge("initial sync pending", "running");
    return C.badge("idle", "success");
  }

  function runSummary(r) {
    if (!r) return el("span", { class: "muted" }, "never");
    return el("div", { class: "stack" },
      el("span", {}, C.badge(r.status), " ", r.trigger, " · ", C.time(r.started_at)),
      el("span", { class: "small" }, `fetched ${r.fetched}, synced ${r.synced}, skipped ${r.skipped}, ` +
         `failed ${r.failed}, conflicts ${r.conflicts}` +
         (r.resolved ? `, ${r.resolved} resolved by policy` : "") +
         (r.duration_ms !== null ? `, ${r.duration_ms} ms` : "")));
  }

  function nextRun(s) {
    const w = s.worker;
    if (!s.enabled) return el("span", { class: "muted" }, "—");
    if (s.long_poll) return "long-poll (continuous)";
    if (w && w.next_run_at) return el("span", { class: "stack" }, C.time(w.next_run_at),
                                      el("span", { class: "small" }, w.schedule || ""));
    return el("span", { class: "small" }, (w && w.schedule) || ("every " + s.poll_interval + " s"));
  }

  /* ---- overview ---- */
  C.route(/^\/$/, async (box) => {
    const o = await C.api("/api/overview");
    box.append(C.heading("Overview"));
    box.append(el("div", { class: "cards" },
      el("a", { class: "card" + (o.open_conflicts ? " warn" : ""), href: "#/conflicts?status=open" },
         el("strong", {}, String(o.open_conflicts)), " open conflicts"),
      el("a", { class: "card" + (o.failed_changes ? " warn" : ""), href: "#/log?status=Failed" },
         el("strong", {}, String(o.failed_changes)), " failed changes"),
      el("a", { class: "card", href: "#/edits" }, el("strong", {}, String(o.local_edits)),
         " locally edited rows")));
    const rows = o.sources.map((s) => el("tr", {},
      el("th", { scope: "row" }, el("div", { class: "stack" }, s.name,
         el("span", { class: "small" }, C.long(s.url, 40)))),
      el("td", {}, sourceState(s)),
      el("td", {}, el("div", { class: "stack" },
         el("span", { title: "now minus the primary's capture time of the newest change applied" },
            s.lag_s === null ? "—" : C.duration(s.lag_s) + " behind"),
         s.worker && s.worker.last_pull ? el("span", { class: "small" },
            s.worker.last_pull.more ? "more changes waiting on the primary" : "caught up at the last pull") : null,
         el("span", { class: "small" }, s.open_conflicts + " open conflicts, " + s.failed_changes +
            " failed"))),
      el("td", {}, runSummary(s.last_run)),
      el("td", {}, nextRun(s)),
      el("td", {}, s.last_error ? el("span", { class: "error-text" }, C.long(s.last_error, 60))
                                : el("span", { class: "muted" }, "none")),
      el("td", { class: "actions" },
         C.action("Pull now", async () => {
           await C.api(`/api/sources/${enc(s.name)}/pull`, { method: "POST" });
           C.flash("ok", `Pull of ${s.name} queued.`);
         }, { title: "Pull " + s.name + " now" }),
         C.action("Dry run", async () => C.go(`/dryrun?source=${enc(s.name)}&run=1`),
                  { title: "What a pull of " + s.name + " would do, without doing it" }),
         C.action(s.enabled ? "Disable" : "Enable", async () => {
           await C.api(`/api/sources/${enc(s.name)}`, { method: "PATCH", json: { enabled: !s.enabled } });
           C.flash("ok", `${s.name} ${s.enabled ? "disabled" : "enabled"}.`);
           await C.refresh();
         }, { class: "secondary" }))));
    box.append(el("h2", {}, "Sources"),
               C.table(["Source", "State", "Lag", "Last run", "Next run", "Error", "Actions"], rows,
                       { empty: "No sources yet: add one with `tdgl-replica source add`." }));
  });

  /* ---- conflicts ---- */
  C.route(/^\/conflicts$/, async (box, m, q) => {
    const status = q.get("status") || "all";
    const list = await C.api("/api/conflicts?limit=1000" + (status !== "all" ? "&status=" + enc(status) : ""));
    list.sort((a, b) => (a.status === "Open" ? 0 : 1) - (b.status === "Open" ? 0 : 1) || b.id - a.id);
    const sel = el("select", { name: "status" },
      ["all", "open", "resolved"].map((s) => el("option", { value: s, selected: s === status }, s)));
    sel.addEventListener("change", () => C.go("/conflicts?status=" + sel.value));
    box.append(C.heading("Conflicts"),
      el("p", {}, "A primary change that met a row edited on this replica. Open ones first."),
      el("div", { class: "filters" }, C.field("Show", sel)));
    const rows = list.map((c) => el("tr", { class: c.status === "Open" ? "open" : "" },
      el("td", {}, el("a", { href: "#/conflicts/" + c.id }, "Conflict " + c.id)),
      el("td", {}, c.table),
      el("td", {}, C.long(C.keyText(c.pk), 40)),
      el("td", {}, c.op),
      el("td", {}, C.time(c.updated_at)),
      el("td", {}, C.badge(c.status), c.resolution ? " " + c.resolution : ""),
      el("td", {}, c.source)));
    box.append(C.table(["Conflict", "Table", "Key", "Kind", "When", "Status", "Source"], rows,
                       { empty: "No conflicts.", class: "conflicts" }));
  });

  C.route(/^\/conflicts\/(\d+)$/, async (box, m) => {
    const c = await C.api("/api/conflicts/" + m[1]);
    box.append(C.heading(`Conflict ${c.id}: ${c.table} ${C.keyText(c.pk)}`),
      el("p", {}, el("a", { href: "#/conflicts" }, "← All conflicts")));
    box.append(el("dl", { class: "meta" },
      el("dt", {}, "Status"), el("dd", {}, C.badge(c.status), c.resolution ? " " + c.resolution : ""),
      el("dt", {}, "Kind"), el("dd", {}, c.op + (c.old_pk ? " (from " + C.keyText(c.old_pk) + ")" : "")),
      el("dt", {}, "Source"), el("dd", {}, c.source),
      el("dt", {}, "Primary change"), el("dd", {}, c.change_id === null ? "—" : "#" + c.change_id),
      el("dt", {}, "Opened"), el("dd", {}, C.time(c.created_at)),
      el("dt", {}, "Refreshed"), el("dd", {}, c.refreshed + " times, last ", C.time(c.updated_at)),
      c.resolved_at ? [el("dt", {}, "Resolved"), el("dd", {}, C.time(c.resolved_at))] : null));
    const differing = c.columns.filter((x) => x.differs).map((x) => x.column);
    box.append(el("h2", {}, "The two versions"),
      el("p", { id: "diff-summary" }, differing.length ?
        `${differing.length} column${differing.length > 1 ? "s differ" : " differs"}: ${differing.join(", ")} (highlighted).` :
        "The two versions have the same values."));
    const cell = (present, v) => present ? C.long(v, 120) : el("span", { class: "muted" }, "(no such column)");
    const rows = c.columns.map((x) => el("tr", { class: x.differs ? "differs" : "" },
      el("th", { scope: "row", "data-column": x.column }, x.column, x.differs ? el("span", { class: "sr-only" }, " (differs)") : null),
      el("td", { class: "v-primary" }, cell(x.in_primary, x.primary)),
      el("td", { class: "v-local" }, cell(x.in_local, x.local)),
      el("td", { class: "mark", "aria-hidden": "true" }, x.differs ? "≠" : "")));
    if (c.primary_row === null)
      box.append(C.message("info", "The primary deleted this row: Accept Primary deletes it here."));
    box.append(C.table(["Column", "Primary's version", "Local row (this replica)", ""], rows,
                       { class: "compare", caption: "Primary and local versions, side by side" }));
    if (c.status === "Open") {
      const resolve = (resolution) => async () => {
        const r = await C.api(`/api/conflicts/${c.id}/resolve`, { method: "POST", json: { resolution } });
        await C.refresh();
        C.flash("ok", `Conflict ${r.id} resolved: ${r.resolution}.`);
      };
      box.append(el("div", { class: "buttons" },
        C.action("Accept Primary", resolve("Accept Primary"),
                 { title: "Apply the primary's version to the local row" }),
        C.action("Keep Local", resolve("Keep Local"),
                 { class: "secondary", title: "Keep the local row; later primary changes open a new conflict" })));
    }
  });

  /* ---- sync log ---- */
  function isoToLocalInput(iso) {
    const d = C.parseTime(iso);
    if (!d) return "";
    const p = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
  }
  C.route(/^\/log$/, async (box, m, q) => {
    const params = new URLSearchParams();
    for (const k of ["status", "source", "table", "key", "since", "until", "before"])
      if (q.get(k)) params.set(k, q.get(k));
    params.set("limit", "50");
    const page = await C.api("/api/log/page?" + params.toString());
    box.append(C.heading("Sync log"));
    const input = (name, label, attrs) => C.field(label, el("input", Object.assign(
      { name, value: q.get(name) || "", type: "text" }, attrs || {})));
    const status = el("select", { name: "status" }, ["", "Synced", "Skipped", "Failed"].map((s) =>
      el("option", { value: s, selected: (q.get("status") || "") === s }, s || "any")));
    const form = el("form", { class: "filters", role: "search", "aria-label": "Filter the log" },
      C.field("Status", status),
      input("source", "Source"), input("table", "Table"),
      input("key", "Key", { placeholder: '7 or {"id":7}' }),
      C.field("Since", el("input", { name: "since", type: "datetime-local", value: isoToLocalInput(q.get("since")) })),
      C.field("Until", el("input", { name: "until", type: "datetime-local", value: isoToLocalInput(q.get("until")) })),
      el("div", { class: "field" }, el("button", { type: "submit" }, "Filter")));
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const f = new FormData(form), h = new URLSearchParams();
      for (const [k, v] of f.entries()) {
        if (!v) continue;
        h.set(k, k === "since" || k === "until" ? new Date(v).toISOString() : v);
      }
      C.go("/log" + (h.toString() ? "?" + h.toString() : ""));
    });
    box.append(form);
    box.append(el("div", { class: "buttons" },
      C.action("Retry all Failed", async () => {
        const src = q.get("source");
        const r = await C.api("/api/log/retry-failed" + (src ? "?source=" + enc(src) : ""), { method: "POST" });
        const n = r.runs.reduce((a, x) => a + x.fetched, 0);
        C.flash("ok", `Retried ${n} Failed change${n === 1 ? "" : "s"} in ${r.runs.length} run${r.runs.length === 1 ? "" : "s"}.`);
        await C.refresh();
      }, { class: "secondary", title: "Retry every Failed change now" + (q.get("source") ? " of " + q.get("source") : "") })));
    const rows = page.entries.map((e) => el("tr", { class: "st-" + e.status.toLowerCase() },
      el("td", {}, String(e.id)),
      el("td", {}, C.time(e.created_at)),
      el("td", {}, e.source),
      el("td", {}, e.table),
      el("td", {}, C.long(C.keyText(e.pk), 40)),
      el("td", {}, e.op),
      el("td", {}, C.badge(e.status)),
      el("td", {}, e.error ? el("span", { class: "error-text" }, C.long(e.error + (e.sqlstate ? " [" + e.sqlstate + "]" : ""), 80))
                           : e.reason ? C.long(e.reason, 80) : ""),
      el("td", {}, e.status === "Failed" ? C.action("Retry", async () => {
        const r = await C.api(`/api/log/${e.id}/retry`, { method: "POST" });
        C.flash("ok", `Entry ${e.id} retried: ${r.entry ? r.entry.status : "done"}.`);
        await C.refresh();
      }, { title: "Retry entry " + e.id }) : "")));
    box.append(C.table(["Id", "Time", "Source", "Table", "Key", "Op", "Status", "Reason / error", ""], rows,
                       { empty: "No entries match.", class: "log" }));
    const nav = el("nav", { class: "pager", "aria-label": "Log pages" });
    if (q.get("before")) {
      const first = new URLSearchParams(params); first.delete("before"); first.delete("limit");
      nav.append(el("a", { href: "#/log" + (first.toString() ? "?" + first : "") }, "« Newest"));
    }
    if (page.next_before !== null) {
      const older = new URLSearchParams(params); older.set("before", page.next_before); older.delete("limit");
      nav.append(el("a", { href: "#/log?" + older, rel: "next" }, "Older »"));
    }
    if (page.entries.length < 50 && page.next_before !== null)
      nav.append(el("span", { class: "small" }, ` Searched entries ${page.searched.from}–${page.searched.below - 1}; older ones may match.`));
    box.append(nav);
  });

  /* ---- runs ---- */
  C.route(/^\/runs$/, async (box) => {
    const runs = await C.api("/api/runs?limit=100");
    box.append(C.heading("Runs"));
    const rows = runs.map((r) => el("tr", {},
      el("td", {}, String(r.id)),
      el("td", {}, r.source),
      el("td", {}, r.trigger + (r.dry_run ? " (dry run)" : "")),
      el("td", {}, C.time(r.started_at)),
      el("td", { class: "num" }, r.duration_ms === null ? "—" : r.duration_ms + " ms"),
      el("td", {}, C.badge(r.status)),
      el("td", { class: "num" }, String(r.fetched)),
      el("td", { class: "num" }, String(r.synced)),
      el("td", { class: "num" }, String(r.skipped)),
      el("td", { class: "num" }, r.failed ? el("a", { href: "#/log?status=Failed&source=" + enc(r.source) }, String(r.failed)) : "0"),
      el("td", { class: "num" }, String(r.conflicts)),
      el("td", { class: "num" }, String(r.resolved || 0)),
      el("td", {}, r.error ? el("span", { class: "error-text" }, C.long(r.error, 60)) : "")));
    box.append(C.table(["Run", "Source", "Trigger", "Started", "Duration", "Status", "Fetched",
                        "Synced", "Skipped", "Failed", "Conflicts", "Resolved", "Error"], rows, { empty: "No runs yet." }));
  });

  /* ---- local edits ---- */
  C.route(/^\/edits$/, async (box) => {
    const edits = await C.api("/api/local-edits?limit=1000");
    box.append(C.heading("Local edits"),
      el("p", {}, "Rows changed on this replica: a primary change of one of them opens a conflict instead of overwriting it."));
    const rows = edits.map((e) => el("tr", {},
      el("td", {}, e.table),
      el("td", {}, C.long(C.keyText(e.pk), 60)),
      el("td", {}, e.op),
      el("td", {}, C.time(e.edited_at)),
      el("td", {}, e.conflict_id ? el("a", { href: "#/conflicts/" + e.conflict_id }, "Conflict " + e.conflict_id) : "none")));
    box.append(C.table(["Table", "Key", "Edit", "Edited", "Open conflict"], rows, { empty: "No local edits." }));
  });

  /* ---- dry run ---- */
  let lastReport = null;
  function renderReport(r) {
    const out = el("section", { class: "report", "aria-labelledby": "report-title" },
      el("h2", { id: "report-title" }, `Dry run of ${r.source} (run ${r.run_id})`));
    out.append(el("p", {}, C.badge(r.status), ` fetched ${r.fetched} in ${r.duration_ms} ms. `,
      Object.entries(r.summary || {}).map(([k, v]) => el("span", { class: "pill" }, `${k}: ${v}`))));
    if (r.error) out.append(C.message("error", r.error));
    const rows = (r.rows || []).map((x) => el("tr", { class: "act-" + x.action },
      el("td", {}, x.change_id === null ? "—" : String(x.change_id)),
      el("td", {}, x.table),
      el("td", {}, x.op || ""),
      el("td", {}, C.long(C.keyText(x.pk), 40)),
      el("td", {}, C.badge(x.action)),
      el("td", {}, x.error ? el("span", { class: "error-text" }, C.long(x.error, 80)) : x.reason ? C.long(x.reason, 80) : ""),
      el("td", {}, (x.changes && x.changes.length) ? el("ul", { class: "changes" }, x.changes.map((d) =>
        el("li", {}, el("span", { class: "col" }, d.column), ": ", el("del", {}, C.long(d.old, 40)), " → ",
           el("ins", {}, C.long(d.new, 40))))) : "")));
    out.append(C.table(["Change", "Table", "Op", "Key", "Would", "Why", "Columns (old → new)"], rows,
                       { empty: "Nothing to do: the replica is up to date." }));
    if (r.truncated) out.append(C.message("info", "Only the first rows are listed; the summary counts all."));
    return out;
  }
  C.route(/^\/dryrun$/, async (box, m, q) => {
    const sources = await C.api("/api/sources");
    const chosen = q.get("source") || (sources[0] && sources[0].name) || "";
    box.append(C.heading("Dry run"),
      el("p", {}, "What a pull would do, row by row, without changing anything or moving the cursor."));
    const sel = el("select", { name: "source" }, sources.map((s) =>
      el("option", { value: s.name, selected: s.name === chosen }, s.name)));
    const slot = el("div", { id: "report" });
    const run = async () => {
      const src = sel.value;
      C.clear(slot);
      slot.append(C.message("info", "Running…"));
      lastReport = await C.api(`/api/sources/${enc(src)}/pull?dry_run=1`, { method: "POST" });
      C.clear(slot);
      slot.append(renderReport(lastReport));
    };
    box.append(el("div", { class: "filters" }, C.field("Source", sel),
      el("div", { class: "field" }, C.action("Run dry run", run))), slot);
    if (q.get("run") === "1" && chosen) {
      await run();
      history.replaceState(null, "", "#/dryrun?source=" + enc(chosen));
    } else if (lastReport && lastReport.source === chosen) {
      slot.append(renderReport(lastReport));
    }
  });

  C.start({
    role: "replica",
    verifyPath: "/api/status",
    onSignedIn: () => {
      if (stopEvents) stopEvents();
      stopEvents = C.events("/api/events", onEvent, liveState);
    },
    onSignOut: () => { if (stopEvents) stopEvents(); stopEvents = null; liveState(false); },
  });
})();
