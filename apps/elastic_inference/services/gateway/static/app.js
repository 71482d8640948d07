// First plain page of the gateway: the live streams with their latest annotated frame.
// Served as a static file so the Content-Security-Policy can forbid inline scripts.
// Builds the DOM with textContent only (stream details come from producers; never innerHTML).
"use strict";

const LIST_MS = 2000;
const SNAPSHOT_MS = 1000;
const rows = new Map(); // stream id -> {tr, cells, img, loading}

function text(value) {
  return value === undefined || value === null ? "" : String(value);
}

function snapshotUrl(id) {
  return "/api/streams/" + encodeURIComponent(id) + "/snapshot.jpg?t=" + Date.now();
}

function makeRow(id) {
  const tr = document.createElement("tr");
  const cells = {};
  for (const name of ["id", "types", "source", "size", "fps", "state", "seen"]) {
    cells[name] = document.createElement("td");
    tr.appendChild(cells[name]);
  }
  const shot = document.createElement("td");
  shot.className = "snapshot";
  const img = document.createElement("img");
  img.alt = "latest frame of " + id;
  const none = document.createElement("span");
  none.className = "none";
  none.textContent = "no output yet";
  none.hidden = true;
  shot.appendChild(img);
  shot.appendChild(none);
  tr.appendChild(shot);
  const row = { tr, cells, img, none, loading: false };
  img.addEventListener("load", () => { row.loading = false; img.hidden = false; none.hidden = true; });
  img.addEventListener("error", () => { row.loading = false; img.hidden = true; none.hidden = false; });
  row.loading = true;
  img.src = snapshotUrl(id);
  return row;
}

function fill(row, s) {
  row.cells.id.textContent = text(s.id);
  row.cells.types.textContent = Array.isArray(s.types) ? s.types.join(", ") : text(s.types);
  row.cells.source.textContent = [text(s.source_kind), text(s.source)].filter(Boolean).join(": ");
  row.cells.size.textContent = s.w && s.h ? s.w + "\u00d7" + s.h : "";
  row.cells.fps.textContent = typeof s.fps === "number" ? s.fps.toFixed(1) : text(s.fps);
  row.cells.state.textContent = text(s.state);
  row.cells.seen.textContent = typeof s.last_seen === "number"
    ? new Date(s.last_seen * 1000).toLocaleTimeString() : "";
}

function setStatus(message, isError) {
  const el = document.getElementById("status");
  el.textContent = message;
  el.className = isError ? "error" : "";
}

async function refreshList() {
  try {
    const resp = await fetch("/api/streams", { cache: "no-store" });
    const body = await resp.json();
    if (!resp.ok) {
      throw new Error(body.error || resp.statusText);
    }
    const tbody = document.querySelector("#streams tbody");
    const live = new Set();
    for (const s of body.streams) {
      live.add(s.id);
      let row = rows.get(s.id);
      if (!row) {
        row = makeRow(s.id);
        rows.set(s.id, row);
        tbody.appendChild(row.tr);
      }
      fill(row, s);
    }
    for (const [id, row] of rows) {
      if (!live.has(id)) {
        row.tr.remove();
        rows.delete(id);
      }
    }
    setStatus(body.streams.length + " live stream(s)", false);
  } catch (err) {
    setStatus("Cannot load streams: " + err.message, true);
  }
}

function refreshSnapshots() {
  for (const [id, row] of rows) {
    if (!row.loading) { // never pile up requests behind a slow one
      row.loading = true;
      row.img.src = snapshotUrl(id);
    }
  }
}

refreshList();
setInterval(refreshList, LIST_MS);
setInterval(refreshSnapshots, SNAPSHOT_MS);
