// Fog of war: the rule (which points are fogged) and its drawing, an SVG layer in the board's
// world coordinates. The rule is the server's (docs/protocol.md, "Fog of war"): a base
// (`revealed` | `hidden`) and shapes applied in order, the last shape containing a point wins.
//
// Drawing: one SVG mask painted in the same order (base, then each shape white for `hide`, black
// for `reveal`), applied to one dark rectangle. Players see it opaque; the GM sees it dark but
// see-through. Players never receive tokens under fog, so the layer only has to cover the map.

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

export function shapeContains(shape, x, y) {
  if (shape.type === "rect") return inRect(shape, x, y);
  return Array.isArray(shape.points) && shape.points.length >= 3 && inPolygon(shape.points, x, y);
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

export function shapeNode(shape, attrs = {}) {
  if (shape.type === "rect") {
    return svg("rect", { x: shape.x, y: shape.y, width: shape.width, height: shape.height, ...attrs });
  }
  return svg("polygon", { points: shape.points.map((p) => p.join(",")).join(" "), "fill-rule": "evenodd", ...attrs });
}

let maskSeq = 0;

/** The fog as drawn on the board: `render(fog, {gm})` redraws it. */
export class FogLayer {
  constructor() {
    const id = `fog-mask-${(maskSeq += 1)}`;
    const big = { x: -FOG_EXTENT, y: -FOG_EXTENT, width: 2 * FOG_EXTENT, height: 2 * FOG_EXTENT };
    this.mask = svg("mask", { id, maskUnits: "userSpaceOnUse", ...big });
    this.cover = svg("rect", { ...big, class: "fog-cover", mask: `url(#${id})` });
    // The GM's fog is see-through, so it also gets stripes: dark on a dark board is not enough.
    const hatch = svg("pattern", { id: `${id}-hatch`, patternUnits: "userSpaceOnUse", width: 24, height: 24,
      patternTransform: "rotate(45)" });
    hatch.append(svg("rect", { x: 0, y: 0, width: 6, height: 24, class: "fog-stripe" }));
    this.hatch = svg("rect", { ...big, class: "fog-hatch", fill: `url(#${id}-hatch)`, mask: `url(#${id})` });
    const defs = svg("defs");
    defs.append(this.mask, hatch);
    this.el = svg("svg", { class: "board-fog", "aria-hidden": "true", width: 1, height: 1, overflow: "visible" });
    this.el.append(defs, this.cover, this.hatch);
    this.drawn = null;
  }

  render(fog, { gm }) {
    this.el.classList.toggle("is-gm", !!gm);
    const key = JSON.stringify(fog || null);
    if (key === this.drawn) return;
    this.drawn = key;
    const current = fog || emptyFog();
    const base = svg("rect", { x: -FOG_EXTENT, y: -FOG_EXTENT, width: 2 * FOG_EXTENT, height: 2 * FOG_EXTENT,
      fill: current.base === "hidden" ? "#fff" : "#000" });
    const parts = [base];
    for (const shape of current.shapes || []) parts.push(shapeNode(shape, { fill: shape.op === "hide" ? "#fff" : "#000" }));
    this.mask.replaceChildren(...parts);
    const empty = current.base !== "hidden" && !current.shapes?.some((s) => s.op === "hide");
    this.el.classList.toggle("is-clear", empty);
    this.el.dataset.base = current.base;
    this.el.dataset.shapes = String((current.shapes || []).length);
  }
}

/** A short description of the fog for people who cannot see the board. */
export function describeFog(fog) {
  const current = fog || emptyFog();
  const n = (current.shapes || []).length;
  const start = current.base === "hidden" ? "Everything fogged" : "Nothing fogged";
  return n ? `${start}, then ${n} area${n === 1 ? "" : "s"} revealed or hidden` : start;
}
