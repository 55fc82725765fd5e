// Mask painting over the micrograph: brush and polygon, one class per stroke, erase, undo, save.
// Uses app.js's globals ($, state, api, say, handle). The mask is painted at the displayed image's
// size; the server stores it at full resolution as a new version (append-only).
"use strict";

const PAINT_COLOURS = {1: [70, 130, 255], 2: [255, 60, 60], 3: [255, 200, 0], 4: [170, 0, 255]};
const paint = {on: false, id: null, w: 0, h: 0, codes: null, base: null, undo: [], poly: [],
               drawing: false, last: null, code: 2, tool: "brush"};

function paintStatus(text) { $("paint-status").textContent = text || ""; }

function paintRender() {
  if (!paint.base) return;
  const c = $("paint"), ctx = c.getContext("2d");
  const out = new ImageData(new Uint8ClampedArray(paint.base.data), paint.w, paint.h);
  const d = out.data;
  for (let i = 0; i < paint.codes.length; i++) {
    const col = PAINT_COLOURS[paint.codes[i]];
    if (!col) continue;
    const j = 4 * i;
    d[j] = 0.55 * d[j] + 0.45 * col[0]; d[j + 1] = 0.55 * d[j + 1] + 0.45 * col[1]; d[j + 2] = 0.55 * d[j + 2] + 0.45 * col[2];
  }
  ctx.putImageData(out, 0, 0);
  if (paint.poly.length) {
    ctx.strokeStyle = "#0f0"; ctx.lineWidth = 1; ctx.beginPath();
    paint.poly.forEach(([x, y], k) => (k ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
    ctx.stroke();
  }
}

function paintBase() {
  const img = $("img"), c = $("paint");
  c.width = paint.w; c.height = paint.h;
  const ctx = c.getContext("2d");
  ctx.drawImage(img, 0, 0, paint.w, paint.h);
  paint.base = ctx.getImageData(0, 0, paint.w, paint.h);
}

async function paintLoad() {
  const img = $("img");
  if (!paint.on || !state.detail || !img.naturalWidth) return;
  if (paint.id === state.detail.id && paint.w === img.naturalWidth && paint.h === img.naturalHeight) {
    paintBase(); paintRender(); return;  // contrast changed: same mask
  }
  paint.id = state.detail.id; paint.w = img.naturalWidth; paint.h = img.naturalHeight;
  paint.codes = new Uint8Array(paint.w * paint.h); paint.undo = []; paint.poly = [];
  paintBase();
  try {
    const res = await api("GET", "/api/micrographs/" + paint.id + "/mask?width=" + paint.w + "&height=" + paint.h);
    if (res.codes) {
      const raw = atob(res.codes);
      for (let i = 0; i < raw.length && i < paint.codes.length; i++) paint.codes[i] = raw.charCodeAt(i);
      paintStatus("your mask of " + res.created_at);
    } else paintStatus("no mask yet");
  } catch (err) { handle(err); }
  paintRender();
}

function paintPoint(ev) {
  const r = $("paint").getBoundingClientRect();
  return [Math.floor((ev.clientX - r.left) * paint.w / r.width), Math.floor((ev.clientY - r.top) * paint.h / r.height)];
}

function paintRadius() {
  return Number($("brush-size").value) * Math.max(paint.w, paint.h) / 400;
}

function stamp(x, y) {
  const r = paintRadius(), r2 = r * r;
  for (let dy = Math.floor(-r); dy <= r; dy++) {
    const yy = y + dy;
    if (yy < 0 || yy >= paint.h) continue;
    for (let dx = Math.floor(-r); dx <= r; dx++) {
      const xx = x + dx;
      if (xx < 0 || xx >= paint.w || dx * dx + dy * dy > r2) continue;
      paint.codes[yy * paint.w + xx] = paint.code;
    }
  }
}

function strokeTo(p) {
  const [x0, y0] = paint.last, [x1, y1] = p;
  const n = Math.max(1, Math.abs(x1 - x0), Math.abs(y1 - y0));
  for (let k = 1; k <= n; k++) stamp(Math.round(x0 + (x1 - x0) * k / n), Math.round(y0 + (y1 - y0) * k / n));
  paint.last = p;
}

function pushUndo() {
  paint.undo.push(paint.codes.slice());
  if (paint.undo.length > 50) paint.undo.shift();
}

function closePolygon() {
  if (paint.poly.length < 3) { paintStatus("a polygon needs 3 points"); return; }
  const off = document.createElement("canvas");
  off.width = paint.w; off.height = paint.h;
  const ctx = off.getContext("2d");
  ctx.fillStyle = "#fff"; ctx.beginPath();
  paint.poly.forEach(([x, y], k) => (k ? ctx.lineTo(x + 0.5, y + 0.5) : ctx.moveTo(x + 0.5, y + 0.5)));
  ctx.closePath(); ctx.fill();
  const alpha = ctx.getImageData(0, 0, paint.w, paint.h).data;
  pushUndo();
  for (let i = 0; i < paint.codes.length; i++) if (alpha[4 * i + 3] >= 128) paint.codes[i] = paint.code;
  paint.poly = [];
  paintRender();
}

async function paintSave() {
  if (!paint.codes) return;
  let bin = "";
  for (let i = 0; i < paint.codes.length; i += 8192) bin += String.fromCharCode.apply(null, paint.codes.subarray(i, i + 8192));
  try {
    const res = await api("POST", "/api/micrographs/" + paint.id + "/mask", {width: paint.w, height: paint.h, codes: btoa(bin)});
    paintStatus("saved " + res.created_at);
    say("Mask of " + state.detail.name + " saved.");
  } catch (err) { handle(err); }
}

function paintMode(on) {
  paint.on = on;
  $("paint").hidden = !on; $("img").hidden = on; $("paint-tools").hidden = !on;
  if (on) { paint.id = null; paintLoad(); }
}

function paintSetup() {
  const c = $("paint");
  $("paint-mode").addEventListener("change", (ev) => paintMode(ev.target.checked));
  $("img").addEventListener("load", () => { if (paint.on) paintLoad(); });
  for (const b of $("paint-classes").querySelectorAll("button")) b.addEventListener("click", () => {
    paint.code = Number(b.dataset.code);
    for (const o of $("paint-classes").querySelectorAll("button")) o.classList.toggle("on", o === b);
  });
  for (const b of $("paint-tool-buttons").querySelectorAll("button")) b.addEventListener("click", () => {
    paint.tool = b.dataset.tool; paint.poly = []; paintRender();
    for (const o of $("paint-tool-buttons").querySelectorAll("button")) o.classList.toggle("on", o === b);
  });
  c.addEventListener("pointerdown", (ev) => {
    if (!paint.codes) return;
    ev.preventDefault();
    const p = paintPoint(ev);
    if (paint.tool === "polygon") { paint.poly.push(p); paintRender(); return; }
    pushUndo(); paint.drawing = true; paint.last = p; stamp(p[0], p[1]); paintRender();
    c.setPointerCapture(ev.pointerId);
  });
  c.addEventListener("pointermove", (ev) => { if (paint.drawing) { strokeTo(paintPoint(ev)); paintRender(); } });
  const end = () => { paint.drawing = false; };
  c.addEventListener("pointerup", end); c.addEventListener("pointercancel", end);
  c.addEventListener("dblclick", (ev) => { if (paint.tool === "polygon") { ev.preventDefault(); closePolygon(); } });
  $("paint-close").addEventListener("click", closePolygon);
  $("paint-undo").addEventListener("click", () => {
    if (paint.poly.length) { paint.poly = []; }
    else if (paint.undo.length) { paint.codes = paint.undo.pop(); }
    else { paintStatus("nothing to undo"); return; }
    paintRender();
  });
  $("paint-save").addEventListener("click", paintSave);
}

document.addEventListener("DOMContentLoaded", paintSetup);
