// Fog of war: the rule (which points are fogged) and its drawing on the board. The rule is the
// server's (docs/protocol.md, "Fog of war"): a base (`revealed` | `hidden`) and shapes applied in
// order, the last shape containing a point wins.
//
// Drawing (FogLayer): a canvas the size of the board's viewport, placed in the world between the
// map tokens and the other tokens and redrawn when the view or the fog changes, painting in the
// same order as the rule: the base, then each shape (`hide` paints fog, `reveal` erases it).
// Players see it opaque; the GM sees it dark blue and see-through. Players never receive
// tokens under fog, so the layer only has to cover the map. (An SVG mask did the same in a few
// lines, but Chromium repainted a mask-sized buffer for every fog change: ~0.5 s a change with
// software rendering, bench/bench_page_fog.py; a 200-shape redraw of the canvas takes a few ms.)

const SVG = "http://www.w3.org/2000/svg";
export const FOG_EXTENT = 1_000_000; // coordinates are within ±1,000,000 (the protocol's limit)
export const MAX_SHAPES = 200;
export const MAX_POINTS = 64;

export function emptyFog() {
  return { base: "revealed", shapes: [] };
}

function inRect(s, x, y) {
  return x >= s.x && x <= s.x + s.width && y >= s.y && y <= s.y + s.height;
}

/** Even-odd rule, with points on an edge counted as inside (as the server counts them). */
function inPolygon(points, x, y) {
  let inside = false;
  let [x1, y1] = points[points.length - 1];
  for (const [x2, y2] of points) {
    if (Math.min(x1, x2) <= x && x <= Math.max(x1, x2) && Math.min(y1, y2) <= y && y <= Math.max(y1, y2)
      && (x2 - x1) * (y - y1) === (y2 - y1) * (x - x1)) return true;
    if ((y1 > y) !== (y2 > y) && x < x1 + ((y - y1) * (x2 - x1)) / (y2 - y1)) inside = !inside;
    x1 = x2;
    y1 = y2;
  }
  return inside;
}

const boxes = new WeakMap(); // shape -> [minX, minY, maxX, maxY]

function box(shape) {
  let b = boxes.get(shape);
  if (!b) {
    if (shape.type === "rect") b = [shape.x, shape.y, shape.x + shape.width, shape.y + shape.height];
    else {
      const xs = shape.points.map((p) => p[0]);
      const ys = shape.points.map((p) => p[1]);
      b = [Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)];
    }
    boxes.set(shape, b);
  }
  return b;
}

export function shapeContains(shape, x, y) {
  if (shape.type === "rect") return inRect(shape, x, y);
  if (!Array.isArray(shape.points) || shape.points.length < 3) return false;
  const [x0, y0, x1, y1] = box(shape); // most points are outside most polygons' boxes
  return x >= x0 && x <= x1 && y >= y0 && y <= y1 && inPolygon(shape.points, x, y);
}

/** Is the point (x, y) under fog? */
export function fogged(fog, x, y) {
  if (!fog) return false;
  const shapes = fog.shapes || [];
  for (let i = shapes.length - 1; i >= 0; i -= 1) {
    if (shapeContains(shapes[i], x, y)) return shapes[i].op === "hide";
  }
  return fog.base === "hidden";
}

/** The fog after a `fog.changed {op, shape}` (a new object; the old one is left alone). */
export function applyFogChange(fog, op, shape) {
  const current = fog || emptyFog();
  if (op === "reveal_all") return { base: "revealed", shapes: [] };
  if (op === "hide_all") return { base: "hidden", shapes: [] };
  if ((op === "reveal" || op === "hide") && shape) return { base: current.base, shapes: [...current.shapes, { ...shape, op }] };
  return current;
}

function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  return node;
}

/** A shape as an SVG node (the fog tool's sketch of the shape being drawn). */
export function shapeNode(shape, attrs = {}) {
  if (shape.type === "rect") {
    return svg("rect", { x: shape.x, y: shape.y, width: shape.width, height: shape.height, ...attrs });
  }
  return svg("polygon", { points: shape.points.map((p) => p.join(",")).join(" "), "fill-rule": "evenodd", ...attrs });
}

const FOG_INK = "#0b0f0c";
const GM_FOG_INK = "#1d2f5c"; // blue, so it stands out on the dark board; see-through in CSS (app.css)
const MAX_CANVAS_PX = 4096; // per side: a very large screen draws the fog a little softer, not slower

/** The fog as drawn on the board: `render(fog, {gm})` when it changes, `fitTo(view)` when the view does. */
export class FogLayer {
  constructor() {
    this.el = document.createElement("canvas");
    this.el.className = "board-fog";
    this.el.setAttribute("aria-hidden", "true");
    this.el.width = 1;
    this.el.height = 1;
    this.ctx = this.el.getContext("2d", { willReadFrequently: false });
    this.fog = emptyFog();
    this.gm = false;
    this.view = null; // {x, y, width, height} in world units, zoom, and the viewport's CSS pixels
    this.render(this.fog, { gm: false });
  }

  render(fog, { gm }) {
    this.fog = fog || emptyFog();
    this.gm = !!gm;
    this.el.classList.toggle("is-gm", this.gm);
    const empty = this.fog.base !== "hidden" && !(this.fog.shapes || []).some((s) => s.op === "hide");
    this.el.classList.toggle("is-clear", empty);
    this.el.dataset.base = this.fog.base;
    this.el.dataset.shapes = String((this.fog.shapes || []).length);
    this._draw();
  }

  /** The world rectangle on screen (`view`), at `zoom`, `px` CSS pixels wide and high. */
  fitTo(view, zoom, px) {
    this.view = { ...view, zoom, pxWidth: px.width, pxHeight: px.height };
    // Its own compositor layer (app.css: will-change), moved by a transform: redrawing it each pan
    // does not repaint the tokens and map around it.
    const st = this.el.style;
    st.transform = `translate(${view.x}px, ${view.y}px)`;
    const width = `${view.width}px`;
    const height = `${view.height}px`;
    if (st.width !== width) st.width = width;
    if (st.height !== height) st.height = height;
    // drawn at once, never a frame later: a player must not glimpse a strip of fogged map
    this._draw();
  }

  _draw() {
    const v = this.view;
    if (!v || this.el.classList.contains("is-clear")) return;
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.min(MAX_CANVAS_PX, Math.round(v.pxWidth * dpr)));
    const hgt = Math.max(1, Math.min(MAX_CANVAS_PX, Math.round(v.pxHeight * dpr)));
    if (this.el.width !== w) this.el.width = w;
    if (this.el.height !== hgt) this.el.height = hgt;
    const ctx = this.ctx;
    const sx = w / v.width;
    const sy = hgt / v.height;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.globalCompositeOperation = "source-over";
    ctx.clearRect(0, 0, w, hgt);
    ctx.fillStyle = this.gm ? GM_FOG_INK : FOG_INK;
    if (this.fog.base === "hidden") ctx.fillRect(0, 0, w, hgt);
    ctx.setTransform(sx, 0, 0, sy, -v.x * sx, -v.y * sy);
    const x1 = v.x + v.width;
    const y1 = v.y + v.height;
    for (const shape of this.fog.shapes || []) {
      const [bx0, by0, bx1, by1] = box(shape);
      if (bx1 < v.x || by1 < v.y || bx0 > x1 || by0 > y1) continue; // off screen: changes nothing seen
      ctx.globalCompositeOperation = shape.op === "hide" ? "source-over" : "destination-out";
      ctx.beginPath();
      if (shape.type === "rect") ctx.rect(shape.x, shape.y, shape.width, shape.height);
      else {
        shape.points.forEach(([px, py], i) => (i ? ctx.lineTo(px, py) : ctx.moveTo(px, py)));
        ctx.closePath();
      }
      ctx.fill("evenodd");
    }
    ctx.globalCompositeOperation = "source-over";
  }

  /** Is the board point (x, y) drawn fogged? (tests: what the canvas shows, not what the rule says) */
  drawnAt(x, y) {
    const v = this.view;
    if (!v || this.el.classList.contains("is-clear")) return false;
    const px = Math.floor(((x - v.x) / v.width) * this.el.width);
    const py = Math.floor(((y - v.y) / v.height) * this.el.height);
    if (px < 0 || py < 0 || px >= this.el.width || py >= this.el.height) return null;
    return this.ctx.getImageData(px, py, 1, 1).data[3] > 0;
  }
}

/** A short description of the fog for people who cannot see the board. */
export function describeFog(fog) {
  const current = fog || emptyFog();
  const n = (current.shapes || []).length;
  const start = current.base === "hidden" ? "Everything fogged" : "Nothing fogged";
  return n ? `${start}, then ${n} area${n === 1 ? "" : "s"} revealed or hidden` : start;
}
