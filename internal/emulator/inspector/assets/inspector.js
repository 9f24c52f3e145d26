// The inspector page's live updates: the tables come rendered by the
// server; this script keeps them current from /_inspector/events
// (server-sent events) and sends the form's frame as JSON.
"use strict";
(function () {
  const maxRows = 500;
  const $ = (sel) => document.querySelector(sel);

  function cell(tr, text, cls) {
    const td = document.createElement("td");
    td.textContent = text == null ? "" : String(text);
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }

  // bodyCell adds a frame's body, cut to the column's width (all of it in
  // its tooltip).
  function bodyCell(tr, body) {
    const div = document.createElement("div");
    div.className = "clip";
    div.textContent = body;
    div.title = body;
    cell(tr, "", "body mono").appendChild(div);
  }

  function emptyRow(tbody, cols, text) {
    const tr = document.createElement("tr");
    tr.className = "empty";
    const td = cell(tr, text);
    td.colSpan = cols;
    tbody.appendChild(tr);
  }

  function renderState(st) {
    const conns = $("#connections tbody");
    conns.replaceChildren();
    for (const c of st.connections) {
      const tr = document.createElement("tr");
      tr.dataset.conn = c.id;
      tr.dataset.service = c.serviceId;
      tr.dataset.group = c.group;
      cell(tr, c.id, "mono");
      cell(tr, c.serviceId || "—", "mono");
      cell(tr, c.group || "—");
      cell(tr, c.sourceIp);
      cell(tr, c.connectedAt);
      cell(tr, c.lastActive);
      conns.appendChild(tr);
    }
    if (st.connections.length === 0) emptyRow(conns, 6, "no connections");
    $("#connection-count").textContent = st.connections.length;

    const groups = $("#groups tbody");
    groups.replaceChildren();
    for (const g of st.groups) {
      const tr = document.createElement("tr");
      tr.dataset.group = g.name;
      cell(tr, g.name);
      const td = cell(tr, "");
      for (const m of g.members) {
        const div = document.createElement("div");
        div.className = "member mono";
        div.dataset.service = m.serviceId;
        div.textContent = (m.serviceId || "—") + " · " + m.connectionId;
        td.appendChild(div);
      }
      groups.appendChild(tr);
    }
    if (st.groups.length === 0) emptyRow(groups, 2, "no groups");
    $("#group-count").textContent = st.groups.length;

    const sel = $("#send-connection");
    const chosen = sel.value;
    sel.replaceChildren();
    for (const c of st.connections) {
      const o = document.createElement("option");
      o.value = c.id;
      o.dataset.group = c.group;
      o.textContent = c.id + " · " + (c.serviceId || "—") + " · " + (c.group || "—");
      sel.appendChild(o);
    }
    if (st.connections.length === 0) {
      const o = document.createElement("option");
      o.value = "";
      o.textContent = "no connections";
      sel.appendChild(o);
    }
    if (st.connections.some((c) => c.id === chosen)) {
      sel.value = chosen;
    } else {
      prefill();
    }
  }

  // reset empties the log and the errors: what they hold is of another run
  // of the gateway, whose entries are sent again from the first.
  function reset(r) {
    $("#log tbody").replaceChildren();
    $("#errors tbody").replaceChildren();
    document.body.dataset.run = r.run;
    document.body.dataset.seq = "0";
  }

  function addEntry(e) {
    // Entries are numbered within a run; a reset comes first on a new one.
    if (document.querySelector('#log tr[data-seq="' + e.seq + '"]')) return;
    const tr = document.createElement("tr");
    tr.className = e.dir + (e.error ? " error" : "");
    tr.dataset.seq = e.seq;
    tr.dataset.dir = e.dir;
    tr.dataset.conn = e.conn;
    tr.dataset.op = e.op;
    tr.dataset.target = e.target;
    tr.dataset.size = e.size;
    tr.dataset.status = e.status;
    cell(tr, e.time);
    cell(tr, e.dir === "in" ? "→" : e.dir === "out" ? "←" : "•", "dir");
    cell(tr, e.conn, "mono");
    cell(tr, e.service, "mono");
    cell(tr, e.op);
    cell(tr, e.target);
    cell(tr, e.event);
    cell(tr, e.size, "num");
    cell(tr, e.status, "status");
    cell(tr, e.via);
    bodyCell(tr, e.body);
    const log = $("#log tbody");
    log.insertBefore(tr, log.firstChild);
    while (log.rows.length > maxRows) log.deleteRow(log.rows.length - 1);
    document.body.dataset.seq = e.seq;
    if (!e.error) return;
    const er = document.createElement("tr");
    er.className = "error";
    er.dataset.seq = e.seq;
    er.dataset.conn = e.conn;
    er.dataset.op = e.op;
    cell(er, e.time);
    cell(er, e.conn, "mono");
    cell(er, e.service, "mono");
    cell(er, e.op);
    cell(er, e.status, "status");
    cell(er, e.via);
    bodyCell(er, e.body);
    const errs = $("#errors tbody");
    errs.insertBefore(er, errs.firstChild);
    while (errs.rows.length > 100) errs.deleteRow(errs.rows.length - 1);
  }

  // The example frame: a GROUP EVENT to the chosen connection's group,
  // until the person types a frame of their own.
  let edited = false;
  function example(group) {
    return JSON.stringify({ op: 0, event: "HELLO", data: { from: "inspector" }, intent: { target: "GROUP", identifier: group || "demo" } });
  }
  function prefill() {
    if (edited) return;
    const o = $("#send-connection").selectedOptions[0];
    $("#send-frame").value = example(o ? o.dataset.group : "");
  }

  function connect() {
    const live = $("#live");
    const b = document.body.dataset;
    const es = new EventSource("/_inspector/events?run=" + encodeURIComponent(b.run || "") + "&since=" + (b.seq || "0"));
    es.addEventListener("open", () => { live.textContent = "live"; live.className = "live on"; });
    es.addEventListener("error", () => {
      live.textContent = "reconnecting…";
      live.className = "live off";
      // The browser gives up on a stream answered with an error (a gateway
      // stopping): start a new one, from the entries the page has.
      if (es.readyState === EventSource.CLOSED) setTimeout(connect, 1000);
    });
    es.addEventListener("reset", (m) => reset(JSON.parse(m.data)));
    es.addEventListener("state", (m) => renderState(JSON.parse(m.data)));
    es.addEventListener("entry", (m) => addEntry(JSON.parse(m.data)));
    es.addEventListener("dropped", (m) => {
      const d = $("#dropped");
      d.hidden = false;
      d.textContent = m.data + " entries dropped (this page was too slow to take them)";
    });
  }

  async function send(ev) {
    ev.preventDefault();
    const out = $("#send-result");
    const as = document.querySelector('input[name="as"]:checked').value;
    const body = { as: as, connection: $("#send-connection").value, frame: $("#send-frame").value };
    out.className = "";
    out.textContent = "sending…";
    try {
      const resp = await fetch("/_inspector/send", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      const r = await resp.json();
      out.className = r.error ? "error" : "ok";
      out.textContent = r.error || r.result;
    } catch (err) {
      out.className = "error";
      out.textContent = "could not send: " + err;
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("#send-form").addEventListener("submit", send);
    // A frame the person typed stays; an emptied one gets the example again.
    $("#send-connection").addEventListener("change", prefill);
    $("#send-frame").addEventListener("input", (e) => { edited = e.target.value.trim() !== ""; });
    prefill();
    connect();
  });
})();
