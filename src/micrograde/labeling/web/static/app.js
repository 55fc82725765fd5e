// micrograde labelling page. Every value from the server is written with textContent (never as
// HTML markup), so names and comments can never run as markup.
"use strict";

const REASON_KEYS = {i: "crystalline-ice", t: "thick-ice", c: "contamination", d: "drift",
                     e: "empty", a: "carbon", k: "crack", o: "other"};
const LABEL_KEYS = {"1": "good", "2": "medium", "3": "bad"};
const $ = (id) => document.getElementById(id);

const state = {me: null, csrf: "", ids: [], pos: 0, detail: null, reasons: new Set(),
               review: new URLSearchParams(location.search).get("review") === "1", busy: false};

function cookie(name) {
  for (const part of document.cookie.split(";")) {
    const [k, ...v] = part.trim().split("=");
    if (k === name) return decodeURIComponent(v.join("="));
  }
  return "";
}

async function api(method, url, body) {
  const opts = {method, headers: {}, credentials: "same-origin"};
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.headers["X-CSRF-Token"] = state.csrf || cookie("mg_login_csrf");
    opts.body = JSON.stringify(body);
  }
  const res = await fetch(url, opts);
  let data = null;
  try { data = await res.json(); } catch (_) { data = null; }
  if (!res.ok) {
    const err = new Error((data && data.error) || res.statusText);
    err.status = res.status;
    throw err;
  }
  return data;
}

function say(text, isError) {
  const m = $("message");
  m.textContent = text || "";
  m.className = isError ? "message error" : "message";
}

function undoKey() { return "mg-undo-" + (state.me ? state.me.id : "x"); }
function undoStack() {
  try { return JSON.parse(sessionStorage.getItem(undoKey()) || "[]"); } catch (_) { return []; }
}
function saveUndo(stack) { sessionStorage.setItem(undoKey(), JSON.stringify(stack.slice(-500))); }

function setProgress(labelled, total) {
  $("progress").textContent = labelled + " of " + total + " labelled";
}

function showLogin(message) {
  $("labeller").hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  $("token").focus();
}

function imageUrl(id, kind) {
  if (kind === "spectrum") return "/api/micrographs/" + id + "/spectrum.png";
  return "/api/micrographs/" + id + "/image.png?low=" + $("low").value + "&high=" + $("high").value;
}

function renderReasons() {
  const box = $("reasons");
  for (const btn of box.querySelectorAll("button")) {
    btn.classList.toggle("on", state.reasons.has(btn.dataset.reason));
    btn.setAttribute("aria-pressed", state.reasons.has(btn.dataset.reason) ? "true" : "false");
  }
}

function renderDetail(d) {
  state.detail = d;
  $("mname").textContent = d.name;
  $("mmeta").textContent = "session " + d.session + " · " + d.pixel_size.toFixed(3) + " Å/px · " +
    d.shape[1] + "×" + d.shape[0] + (d.spectrum_available ? "" : " · no spectrum");
  $("position").textContent = "queue position " + (state.pos + 1) + " of " + state.ids.length;
  const mine = d.mine && d.mine.label ? d.mine : null;
  const lab = $("mylabel");
  lab.textContent = mine ? mine.label + (mine.reasons.length ? " (" + mine.reasons.join(", ") + ")" : "") : "none";
  lab.className = mine ? "label-" + mine.label : "label-none";
  state.reasons = new Set(mine ? mine.reasons : []);
  $("comment").value = mine ? mine.comment : "";
  renderReasons();
  const body = $("scores").tBodies[0];
  body.replaceChildren();
  for (const [name, value] of Object.entries(d.scores)) {
    const tr = document.createElement("tr");
    const th = document.createElement("th"); th.textContent = name;
    const td = document.createElement("td"); td.textContent = value === null ? "–" : Number(value).toPrecision(3);
    tr.append(th, td); body.append(tr);
  }
  const list = $("others");
  list.replaceChildren();
  $("others-wrap").hidden = d.blind;
  for (const o of d.others || []) {
    const li = document.createElement("li");
    li.textContent = o.annotator + " (" + o.expertise + "): " + o.label +
      (o.reasons.length ? " [" + o.reasons.join(", ") + "]" : "") + (o.comment ? " — " + o.comment : "");
    list.append(li);
  }
}

async function show(pos) {
  if (!state.ids.length) { say("No micrographs in the workspace yet."); return; }
  state.pos = Math.max(0, Math.min(pos, state.ids.length - 1));
  const id = state.ids[state.pos];
  const reveal = !$("blind").checked && !state.me.enforce_blind;
  const d = await api("GET", "/api/micrographs/" + id + (reveal ? "?reveal=1" : ""));
  $("img").src = imageUrl(id, "image");
  $("spec").src = imageUrl(id, "spectrum");
  renderDetail(d);
  const path = "/micrograph/" + id + (state.review ? "?review=1" : "");
  if (location.pathname + location.search !== path) history.replaceState(null, "", path);
  const next = state.ids[state.pos + 1];
  if (next !== undefined) { new Image().src = imageUrl(next, "image"); new Image().src = imageUrl(next, "spectrum"); }
}

async function label(value) {
  if (state.busy || !state.detail) return;
  state.busy = true;
  try {
    const res = await api("POST", "/api/micrographs/" + state.detail.id + "/annotations",
      {label: value, reasons: [...state.reasons], comment: $("comment").value, review: state.review});
    const stack = undoStack(); stack.push(res.annotation_id); saveUndo(stack);
    setProgress(res.labelled, res.total);
    say("Labelled " + state.detail.name + " " + value + ".");
    if (state.pos + 1 < state.ids.length) await show(state.pos + 1);
    else { await show(state.pos); say("End of the queue: " + res.labelled + " of " + res.total + " labelled."); }
  } catch (err) {
    handle(err);
  } finally { state.busy = false; }
}

async function undo() {
  if (state.busy) return;
  const stack = undoStack();
  let target = stack.pop();
  if (target === undefined && state.detail && state.detail.mine) target = state.detail.mine.annotation_id;
  if (target === undefined) { say("Nothing to undo."); return; }
  state.busy = true;
  try {
    const res = await api("POST", "/api/undo", {annotation_id: target});
    saveUndo(stack);
    setProgress(res.labelled, res.total);
    const at = state.ids.indexOf(res.micrograph_id);
    await show(at >= 0 ? at : state.pos);
    say("Undone: label now " + (res.label || "none") + ".");
  } catch (err) { handle(err); } finally { state.busy = false; }
}

function handle(err) {
  if (err.status === 401) showLogin("Your session ended: log in again.");
  else say(err.message, true);
}

function toggleReason(tag) {
  if (state.reasons.has(tag)) state.reasons.delete(tag); else state.reasons.add(tag);
  renderReasons();
}

function onKey(ev) {
  if ($("labeller").hidden) return;
  const t = ev.target;
  if (t && (t.tagName === "TEXTAREA" || t.tagName === "INPUT") && t.type !== "range" && t.type !== "checkbox") {
    if (ev.key === "Escape") t.blur();
    return;
  }
  if ((ev.ctrlKey || ev.metaKey) && ev.key.toLowerCase() === "z") { ev.preventDefault(); undo(); return; }
  if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
  if (LABEL_KEYS[ev.key]) { ev.preventDefault(); label(LABEL_KEYS[ev.key]); }
  else if (ev.key === "ArrowRight") { ev.preventDefault(); if (!state.busy) show(state.pos + 1).catch(handle); }
  else if (ev.key === "ArrowLeft") { ev.preventDefault(); if (!state.busy) show(state.pos - 1).catch(handle); }
  else if (ev.key === "u") { ev.preventDefault(); undo(); }
  else if (REASON_KEYS[ev.key]) { ev.preventDefault(); toggleReason(REASON_KEYS[ev.key]); }
}

async function start(me) {
  state.me = me; state.csrf = me.csrf;
  $("login").hidden = true; $("labeller").hidden = false; $("logout").hidden = false;
  $("who").textContent = me.name + " (" + me.expertise + ")";
  $("blind-wrap").hidden = me.enforce_blind;
  $("review-badge").hidden = !state.review;
  setProgress(me.labelled, me.total);
  const q = await api("GET", "/api/queue");
  state.ids = q.ids;
  const m = location.pathname.match(/^\/micrograph\/(\d+)$/);
  const wanted = m ? Number(m[1]) : q.resume;
  const at = state.ids.indexOf(wanted);
  await show(at >= 0 ? at : 0);
  document.body.dataset.ready = "1";
}

function setup() {
  const box = $("reasons"), keys = $("reason-keys");
  for (const [key, tag] of Object.entries(REASON_KEYS)) {
    const b = document.createElement("button");
    b.type = "button"; b.dataset.reason = tag;
    const k = document.createElement("kbd"); k.textContent = key;
    b.append(k, document.createTextNode(" " + tag));
    b.addEventListener("click", () => toggleReason(tag));
    box.append(b);
    const hint = document.createElement("span");
    const hk = document.createElement("kbd"); hk.textContent = key;
    hint.append(hk, document.createTextNode(" " + tag + "  "));
    keys.append(hint);
  }
  for (const b of $("label-buttons").querySelectorAll("button")) b.addEventListener("click", () => label(b.dataset.label));
  $("prev").addEventListener("click", () => show(state.pos - 1).catch(handle));
  $("next").addEventListener("click", () => show(state.pos + 1).catch(handle));
  $("undo").addEventListener("click", () => undo());
  for (const id of ["low", "high"]) $(id).addEventListener("change", () => {
    if (state.detail) $("img").src = imageUrl(state.detail.id, "image");
  });
  $("blind").addEventListener("change", () => show(state.pos).catch(handle));
  $("logout").addEventListener("click", async () => {
    try { await api("POST", "/api/logout", {}); } catch (_) { /* already logged out */ }
    sessionStorage.removeItem(undoKey());
    state.csrf = ""; showLogin("Logged out.");
  });
  $("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const me = await api("POST", "/api/login", {token: $("token").value.trim()});
      $("token").value = "";
      await start(me);
    } catch (err) {
      $("login-error").textContent = err.status === 401 ? "Unknown token." : err.message;
    }
  });
  document.addEventListener("keydown", onKey);
  api("GET", "/api/me").then(start).catch((err) => {
    if (err.status === 401 || err.status === 403) showLogin(err.status === 403 ? err.message : "");
    else showLogin(err.message);
  });
}

document.addEventListener("DOMContentLoaded", setup);
