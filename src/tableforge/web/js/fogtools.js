// The GM's fog drawing tool: reveal or hide a rectangle or a polygon on the scene being viewed.
// While a tool is chosen it is the board's `tool` (board-input.js hands it the pointer and keys).
//
// Mouse / touch: a rectangle is a drag (or two clicks: corner, corner); a polygon is one click per
// corner, closed by a double-click, Enter or the Finish button; Esc cancels. Keyboard: the arrow
// keys move a cross-hair (Shift: faster), Space sets a corner or point, Enter finishes, Backspace
// takes the last point back, Esc cancels (a second Esc puts the tool down).

import { FOG_EXTENT, MAX_POINTS, shapeNode } from "./fog.js";
import { clamp, describeError, toast } from "./util.js";

const SVG = "http://www.w3.org/2000/svg";
const KEY_STEP_PX = 10;
const KEY_BIG_STEP_PX = 50;
const SKETCH_Z = 2_999_000;

const round = (v) => Math.round(clamp(v, -FOG_EXTENT, FOG_EXTENT));

function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  return node;
}

export class FogTool {
  /** `onStatus(text)`: what the tool expects next, shown and announced by the toolbar. */
  constructor({ board, state, socket, onStatus, onDone }) {
    this.board = board;
    this.state = state;
    this.socket = socket;
    this.onStatus = onStatus || (() => {});
    this.onDone = onDone || (() => {});
    this.mode = null; // {op: "reveal" | "hide", shape: "rect" | "polygon"}
    this.points = []; // corners so far (world coordinates)
    this.cursor = null; // where the next point goes (pointer hover or keyboard cross-hair)
    this._secondCorner = false; // the press under way finishes a rectangle
    this.layer = svg("svg", { class: "fog-sketch", "aria-hidden": "true", width: 1, height: 1, overflow: "visible" });
    this.layer.style.zIndex = String(SKETCH_Z);
    board.world.append(this.layer);
  }

  /** Pick up a tool (or put it down with null). */
  use(mode) {
    this.points = [];
    this.mode = mode;
    if (mode) this.board.setTool(this);
    else if (this.board.tool === this) this.board.setTool(null);
    this.board.viewport.classList.toggle("is-drawing", !!mode);
    if (mode) this.cursor = this.board.viewCenter();
    this._draw();
    this._say();
  }

  /** Another tool took the board (the ruler, grid alignment): this one is put down. */
  release() {
    if (this.mode) this.onDone();
  }

  get drawing() {
    return this.points.length > 0;
  }

  // -- the pointer (board-input.js) ----------------------------------------------------------------
  down(at) {
    this.cursor = at;
    // a press with no corner yet starts a rectangle; with one (an earlier click, or Space) it
    // is the opposite corner
    this._secondCorner = this.points.length > 0;
    if (this.mode.shape === "rect" && !this.points.length) this.points = [at];
    this._draw();
  }

  drag(at) {
    this.cursor = at;
    this._draw();
  }

  up(at, moved) {
    this.cursor = at;
    if (this.mode.shape === "rect") {
      if (moved || this._secondCorner) this._commitRect(this.points[0], at);
      // else: a click set the first corner; the next click (or Space) is the other one
    } else if (!moved) {
      this._addPoint(at);
    }
    this._draw();
    this._say();
  }

  hover(at) {
    this.cursor = at;
    if (this.drawing) this._draw();
  }

  dblclick() {
    if (this.mode?.shape === "polygon") this.finish();
  }

  onView() {
    this._draw();
  }

  /** Keys while the tool is up; true when the key was the tool's. */
  key(e) {
    if (!this.mode || e.altKey || e.ctrlKey || e.metaKey) return false;
    const zoom = this.board.view.zoom;
    const step = (e.shiftKey ? KEY_BIG_STEP_PX : KEY_STEP_PX) / zoom;
    const arrows = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
    if (arrows[e.key]) {
      const [dx, dy] = arrows[e.key];
      const c = this.cursor || this.board.viewCenter();
      this.cursor = { x: c.x + dx, y: c.y + dy };
      this._keepInView();
      this._draw();
      return true;
    }
    if (e.key === " " || e.key === "Spacebar") {
      const at = this.cursor || this.board.viewCenter();
      if (this.mode.shape === "rect") {
        if (this.points.length) this._commitRect(this.points[0], at);
        else this.points = [at];
      } else {
        this._addPoint(at);
      }
      this._draw();
      this._say();
      return true;
    }
    if (e.key === "Enter") {
      if (this.mode.shape === "rect" && this.points.length) this._commitRect(this.points[0], this.cursor);
      else this.finish();
      return true;
    }
    if (e.key === "Backspace" && this.points.length) {
      this.points.pop();
      this._draw();
      this._say();
      return true;
    }
    if (e.key === "Escape") {
      if (this.drawing) this.cancel();
      else this.onDone();
      return true;
    }
    return false;
  }

  /** Close the polygon drawn so far (Finish button, double-click, Enter). */
  finish() {
    if (!this.mode) return;
    if (this.mode.shape === "rect") {
      if (this.points.length && this.cursor) this._commitRect(this.points[0], this.cursor);
      return;
    }
    const points = this._distinct();
    if (points.length < 3) {
      this.onStatus("A polygon needs at least 3 corners: click (or press Space) to add more.");
      return;
    }
    this._send({ type: "polygon", points: points.map((p) => [round(p.x), round(p.y)]) });
    this.points = [];
    this._draw();
    this._say();
  }

  cancel() {
    this.points = [];
    this._draw();
    this._say();
  }

  cancelStroke() {
    if (this.mode?.shape === "rect") this.cancel();
  }

  // -- shapes ----------------------------------------------------------------------------------------
  _addPoint(at) {
    const last = this.points[this.points.length - 1];
    const near = 4 / this.board.view.zoom;
    if (last && Math.abs(last.x - at.x) <= near && Math.abs(last.y - at.y) <= near) return; // a double-click's second click
    this.points.push(at);
    if (this.points.length >= MAX_POINTS) this.finish();
  }

  _distinct() {
    const out = [];
    for (const p of this.points) {
      const q = { x: round(p.x), y: round(p.y) };
      const last = out[out.length - 1];
      if (!last || last.x !== q.x || last.y !== q.y) out.push(q);
    }
    if (out.length > 1 && out[0].x === out[out.length - 1].x && out[0].y === out[out.length - 1].y) out.pop();
    return out;
  }

  _commitRect(a, b) {
    this.points = [];
    if (!a || !b) return;
    const x0 = round(Math.min(a.x, b.x));
    const y0 = round(Math.min(a.y, b.y));
    const x1 = round(Math.max(a.x, b.x));
    const y1 = round(Math.max(a.y, b.y));
    if (x1 - x0 < 1 || y1 - y0 < 1) {
      this.onStatus("That rectangle has no area: drag across the part of the map to change.");
      this._draw();
      return;
    }
    this._send({ type: "rect", x: x0, y: y0, width: x1 - x0, height: y1 - y0 });
    this._draw();
    this._say();
  }

  /** Reveal or hide what the board shows right now (the keyboard's quickest way). */
  applyToView(op) {
    const rect = this.board.viewport.getBoundingClientRect();
    const a = this.board.toWorld(rect.left, rect.top);
    const b = this.board.toWorld(rect.right, rect.bottom);
    this.changeFog(op, { type: "rect", x: round(a.x), y: round(a.y), width: Math.max(1, round(b.x) - round(a.x)),
      height: Math.max(1, round(b.y) - round(a.y)) });
  }

  _send(shape) {
    this.changeFog(this.mode.op, shape);
  }

  /** fog.change on the scene being viewed; `shape` null for reveal_all / hide_all. */
  changeFog(op, shape = null) {
    const sceneId = this.state.sceneId;
    if (!sceneId) return Promise.resolve();
    const payload = { scene_id: sceneId, op };
    if (shape) payload.shape = shape;
    const me = this.state.me.id;
    return this.socket.request("fog.change", payload, {
      asEvent: () => ({ type: "fog.changed", scene_id: sceneId, op, ...(shape ? { shape } : {}), by: me }),
    }).catch((err) => toast(err.code === "fog_full"
      ? "This scene's fog holds 200 shapes, the most it can: use Reveal all or Hide all, then draw again."
      : describeError(err)));
  }

  // -- drawing the sketch ---------------------------------------------------------------------------
  _keepInView() {
    const b = this.board;
    const rect = b.viewport.getBoundingClientRect();
    const sx = this.cursor.x * b.view.zoom + b.view.x;
    const sy = this.cursor.y * b.view.zoom + b.view.y;
    const margin = 30;
    let dx = 0;
    let dy = 0;
    if (sx < margin) dx = margin - sx;
    if (sx > rect.width - margin) dx = rect.width - margin - sx;
    if (sy < margin) dy = margin - sy;
    if (sy > rect.height - margin) dy = rect.height - margin - sy;
    if (dx || dy) b.panBy(dx, dy);
  }

  _draw() {
    const parts = [];
    const zoom = this.board.view.zoom;
    const width = 2 / zoom;
    const cls = this.mode?.op === "hide" ? "is-hide" : "is-reveal";
    const c = this.cursor;
    if (this.mode?.shape === "rect" && this.points.length && c) {
      const [a] = this.points;
      parts.push(shapeNode({ type: "rect", x: Math.min(a.x, c.x), y: Math.min(a.y, c.y), width: Math.abs(c.x - a.x),
        height: Math.abs(c.y - a.y) }, { class: `sketch-shape ${cls}`, "stroke-width": width }));
    } else if (this.mode?.shape === "polygon" && this.points.length) {
      const pts = [...this.points, ...(c ? [c] : [])].map((p) => `${p.x},${p.y}`).join(" ");
      parts.push(svg("polygon", { points: pts, class: `sketch-shape ${cls}`, "stroke-width": width }));
      for (const p of this.points) parts.push(svg("circle", { cx: p.x, cy: p.y, r: 4 / zoom, class: "sketch-point" }));
    }
    if (this.mode && c) {
      const arm = 10 / zoom;
      parts.push(svg("path", { d: `M${c.x - arm},${c.y} L${c.x + arm},${c.y} M${c.x},${c.y - arm} L${c.x},${c.y + arm}`,
        class: "sketch-cursor", "stroke-width": width }));
    }
    this.layer.replaceChildren(...parts);
  }

  _say() {
    if (!this.mode) {
      this.onStatus("");
      return;
    }
    const verb = this.mode.op === "reveal" ? "reveal" : "hide";
    if (this.mode.shape === "rect") {
      this.onStatus(this.points.length
        ? `Now the opposite corner: release, click, or press Space. Esc cancels.`
        : `Drag across the area to ${verb} (or click two corners; keyboard: arrows and Space).`);
    } else {
      const n = this.points.length;
      this.onStatus(n
        ? `${n} corner${n === 1 ? "" : "s"}. Click to add, double-click or Enter to ${verb} the area, Backspace takes one back, Esc cancels.`
        : `Click each corner of the area to ${verb} (keyboard: arrows and Space).`);
    }
  }
}
