// Grid geometry for the board: the cell under a point, a cell's centre, snapping a dropped token,
// distances in cells and in the scene's units. The same functions as the server's
// src/tableforge/domain/grid.py (snake_case there), checked against one table of cases by
// tests/unit/test_grid_js.py, so the board and the server never disagree. To stay equal to the
// last bit both use the same operations in the same order: rounding is floor(v + 0.5), lengths
// sqrt(dx*dx + dy*dy) (never Math.hypot), hex corners from written-out unit vectors (never cos/sin),
// and ties go to the first candidate in a fixed order.
//
// A grid is the settings object the server sends (wire keys): {type: "square"|"hex_flat"|"hex_pointy"|"none",
// size, offset_x, offset_y, color, opacity, hidden, units_per_cell, unit, diagonal: "5-5-5"|"5-10-5"|"euclidean"}.
// Cells are [col, row] on squares and axial [q, r] on hexes. No DOM here: node can import it.

export const GRID_TYPES = ["square", "hex_flat", "hex_pointy", "none"];
export const DIAGONALS = ["5-5-5", "5-10-5", "euclidean"];
export const TOKEN_CELLS_MIN = 0.25;
export const TOKEN_CELLS_MAX = 20;
export const MAX_WAYPOINTS = 64;
export const DEFAULT_GRID = Object.freeze({
  type: "square", size: 70, offset_x: 0, offset_y: 0, color: "#000000", opacity: 0.25, hidden: false,
  units_per_cell: 5, unit: "ft", diagonal: "5-5-5",
});

const SQRT3 = Math.sqrt(3);
const HALF_SQRT3 = SQRT3 / 2;
const FLAT_CORNERS = [[1, 0], [0.5, HALF_SQRT3], [-0.5, HALF_SQRT3], [-1, 0], [-0.5, -HALF_SQRT3], [0.5, -HALF_SQRT3]];
const POINTY_CORNERS = [[HALF_SQRT3, -0.5], [HALF_SQRT3, 0.5], [0, 1], [-HALF_SQRT3, 0.5], [-HALF_SQRT3, -0.5], [0, -1]];

/** The settings with defaults for what is missing (the server has already checked what is there). */
export function withDefaults(grid) {
  return { ...DEFAULT_GRID, ...(grid || {}) };
}

export const isHex = (g) => g.type === "hex_flat" || g.type === "hex_pointy";
const round = (v) => Math.floor(v + 0.5);
const hexRadius = (g) => g.size / SQRT3;

function hexOrigin(g) {
  const radius = hexRadius(g);
  if (g.type === "hex_pointy") return [g.offset_x + g.size / 2, g.offset_y + radius];
  return [g.offset_x + radius, g.offset_y + g.size / 2];
}

function cubeRound(q, r) {
  const x = q;
  const z = r;
  const y = -x - z;
  let rx = round(x);
  const ry = round(y);
  let rz = round(z);
  const dx = Math.abs(rx - x);
  const dy = Math.abs(ry - y);
  const dz = Math.abs(rz - z);
  if (dx > dy && dx > dz) rx = -ry - rz;
  else if (!(dy > dz)) rz = -rx - ry; // (when dy is the largest, y is repaired, and y is not returned)
  return [rx + 0, rz + 0]; // + 0 turns -0 into 0, as Python's ints have no -0
}

/** The cell holding the point (on a "none" grid: the square cell of `size` it would be in). */
export function cellAt(g, x, y) {
  if (!isHex(g)) return [Math.floor((x - g.offset_x) / g.size) + 0, Math.floor((y - g.offset_y) / g.size) + 0];
  const [ox, oy] = hexOrigin(g);
  const px = x - ox;
  const py = y - oy;
  const radius = hexRadius(g);
  let q;
  let r;
  if (g.type === "hex_pointy") {
    q = (SQRT3 / 3 * px - py / 3) / radius;
    r = (2 / 3 * py) / radius;
  } else {
    q = (2 / 3 * px) / radius;
    r = (-px / 3 + SQRT3 / 3 * py) / radius;
  }
  return cubeRound(q, r);
}

export function cellCenter(g, cell) {
  const [col, row] = cell;
  if (!isHex(g)) return [g.offset_x + (col + 0.5) * g.size, g.offset_y + (row + 0.5) * g.size];
  const [ox, oy] = hexOrigin(g);
  const radius = hexRadius(g);
  if (g.type === "hex_pointy") return [ox + g.size * (col + row / 2), oy + 1.5 * radius * row];
  return [ox + 1.5 * radius * col, oy + g.size * (row + col / 2)];
}

/** The six corners of a hex, clockwise (y down) from the right-most (flat) or the upper right (pointy). */
export function hexCorners(g, cell) {
  const [cx, cy] = cellCenter(g, cell);
  const radius = hexRadius(g);
  return (g.type === "hex_pointy" ? POINTY_CORNERS : FLAT_CORNERS).map(([ux, uy]) => [cx + radius * ux, cy + radius * uy]);
}

function checkCells(cells) {
  if (typeof cells !== "number" || !Number.isFinite(cells) || cells < TOKEN_CELLS_MIN || cells > TOKEN_CELLS_MAX) {
    throw new RangeError(`a token's size must be ${TOKEN_CELLS_MIN} to ${TOKEN_CELLS_MAX} cells`);
  }
  return cells;
}

/** Where a token whose centre is dropped at (x, y) lands; see grid.py's snap for the rules. */
export function snap(g, x, y, cells = 1) {
  const n = checkCells(cells);
  if (g.type === "none") return [x, y];
  if (!isHex(g)) {
    if (n < 1) return cellCenter(g, cellAt(g, x, y));
    const half = n * g.size / 2;
    const left = g.offset_x + round((x - half - g.offset_x) / g.size) * g.size;
    const top = g.offset_y + round((y - half - g.offset_y) / g.size) * g.size;
    return [left + half, top + half];
  }
  const cell = cellAt(g, x, y);
  if (n < 1 || round(n) % 2 === 1) return cellCenter(g, cell);
  let best = [0, 0];
  let bestD2 = Infinity;
  for (const [cx, cy] of hexCorners(g, cell)) {
    const d2 = (cx - x) * (cx - x) + (cy - y) * (cy - y);
    if (d2 < bestD2) {
      best = [cx, cy];
      bestD2 = d2;
    }
  }
  return best;
}

/** Steps between two hexes (axial coordinates). */
export function hexDistance(a, b) {
  const dq = a[0] - b[0];
  const dr = a[1] - b[1];
  return (Math.abs(dq) + Math.abs(dr) + Math.abs(dq + dr)) / 2;
}

/** Cells between two cells, by the grid's rule. */
export function cellDistance(g, a, b) {
  return pathDistance(g, [a, b]);
}

/** Cells along a path through `cells`; under 5-10-5 the diagonal count carries from leg to leg. */
export function pathDistance(g, cells) {
  if (isHex(g)) {
    let steps = 0;
    for (let i = 0; i < cells.length - 1; i++) steps += hexDistance(cells[i], cells[i + 1]);
    return steps;
  }
  let straight = 0;
  let diagonals = 0;
  let euclid = 0;
  for (let i = 0; i < cells.length - 1; i++) {
    const dc = Math.abs(cells[i + 1][0] - cells[i][0]);
    const dr = Math.abs(cells[i + 1][1] - cells[i][1]);
    straight += Math.max(dc, dr) - Math.min(dc, dr);
    diagonals += Math.min(dc, dr);
    euclid += Math.sqrt(dc * dc + dr * dr);
  }
  if (g.diagonal === "euclidean") return euclid;
  if (g.diagonal === "5-10-5") return straight + diagonals + Math.floor(diagonals / 2);
  return straight + diagonals;
}

/** Cells in the scene's units, to one decimal. */
export function toUnits(g, cells) {
  return Math.floor(cells * g.units_per_cell * 10 + 0.5) / 10;
}

/** "15", "7.5": as Python's grid.format_number writes it. */
export function formatNumber(value) {
  return String(value);
}

/** The length of a ruler dragged through `points` ([x, y] board pixels): {cells, units, text}. */
export function measure(g, points) {
  if (points.length < 2 || points.length > MAX_WAYPOINTS) throw new RangeError(`a measurement needs 2 to ${MAX_WAYPOINTS} points`);
  let cells;
  if (g.type === "none") {
    let pixels = 0;
    for (let i = 0; i < points.length - 1; i++) {
      const dx = points[i + 1][0] - points[i][0];
      const dy = points[i + 1][1] - points[i][1];
      pixels += Math.sqrt(dx * dx + dy * dy);
    }
    cells = pixels / g.size;
  } else {
    cells = pathDistance(g, points.map(([x, y]) => cellAt(g, x, y)));
  }
  const units = toUnits(g, cells);
  return { cells, units, text: `${formatNumber(units)} ${g.unit}` };
}
