// The board's grid lines, drawn from the scene's settings (docs/protocol.md, "Grid settings") as the
// viewport's background: one SVG tile (a square, or two rows of hexes) as a data: URL
// (the page's Content-Security-Policy allows data: images), scaled and shifted with the view.

import { DEFAULT_GRID } from "./grid.js";
const cache = new Map(); // tile key -> {url, width, height}; a handful of distinct grids per session
const CACHE_MAX = 32;

function tile(type, size, color, opacity) {
  const key = `${type}|${size}|${color}|${opacity}`;
  const known = cache.get(key);
  if (known) return known;
  const stroke = `stroke='${color}' stroke-opacity='${opacity}' stroke-width='1' fill='none' vector-effect='non-scaling-stroke'`;
  let body;
  let width = size;
  let height = size;
  if (type === "hex_pointy" || type === "hex_flat") {
    // hexes `size` wide across their flats: one tile holds a full row and a half-shifted row, so it
    // repeats seamlessly; flat-top hexes are the same tile with x and y swapped
    const r = size / Math.sqrt(3);
    const w = size / 2;
    const flat = type === "hex_flat";
    width = flat ? 3 * r : size;
    height = flat ? size : 3 * r;
    const pt = (x, y) => (flat ? `${y},${x}` : `${x},${y}`);
    const path = [
      `M${pt(w, 0)} L${pt(size, r / 2)} L${pt(size, 1.5 * r)} L${pt(w, 2 * r)} L${pt(0, 1.5 * r)} L${pt(0, r / 2)} Z`,
      `M${pt(w, 2 * r)} L${pt(w, 3 * r)}`,
    ].join(" ");
    body = `<path d='${path}' ${stroke}/>`;
  } else {
    body = `<path d='M0,0 L${size},0 M0,0 L0,${size}' ${stroke}/>`;
  }
  const doc = `<svg xmlns='http://www.w3.org/2000/svg' width='${width}' height='${height}' viewBox='0 0 ${width} ${height}'>${body}</svg>`;
  const made = { url: `url("data:image/svg+xml,${encodeURIComponent(doc)}")`, width, height };
  if (cache.size >= CACHE_MAX) cache.delete(cache.keys().next().value);
  cache.set(key, made);
  return made;
}

/** CSS background-image, -size and -position for the grid at this view. */
export function gridBackground(grid, zoom, viewX, viewY) {
  const g = { ...DEFAULT_GRID, ...(grid || {}) };
  if (g.type === "none" || g.hidden || !(g.size > 0)) return { image: "none", size: "auto", position: "0 0" };
  const color = /^#[0-9a-fA-F]{6}$/.test(g.color) ? g.color : DEFAULT_GRID.color;
  // the board is dark: a black grid would vanish, so black (the default) is drawn light
  const ink = color.toLowerCase() === "#000000" ? "#ffffff" : color;
  const opacity = Math.min(1, Math.max(0.05, Number(g.opacity) || 0));
  const t = tile(g.type === "hex" ? "hex_pointy" : g.type, g.size, ink, ink === color ? opacity : Math.min(1, opacity * 0.4));
  return {
    image: t.url,
    size: `${t.width * zoom}px ${t.height * zoom}px`,
    position: `${viewX + (g.offset_x || 0) * zoom}px ${viewY + (g.offset_y || 0) * zoom}px`,
  };
}
