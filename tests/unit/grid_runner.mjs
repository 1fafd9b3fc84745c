// Runs web/js/grid.js on the cases read from stdin ([{fn, grid, args}]) and writes the results as
// JSON ([{value} | {error}]), for tests/unit/test_grid_js.py. argv[2]: the path of grid.js.
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const grid = await import(pathToFileURL(process.argv[2]).href);
const FUNCTIONS = {
  cell_at: (g, x, y) => grid.cellAt(g, x, y),
  cell_center: (g, cell) => grid.cellCenter(g, cell),
  hex_corners: (g, cell) => grid.hexCorners(g, cell),
  snap: (g, x, y, cells) => grid.snap(g, x, y, cells),
  hex_distance: (g, a, b) => grid.hexDistance(a, b),
  cell_distance: (g, a, b) => grid.cellDistance(g, a, b),
  path_distance: (g, cells) => grid.pathDistance(g, cells),
  measure: (g, points) => grid.measure(g, points),
  to_units: (g, cells) => grid.toUnits(g, cells),
  format_number: (g, value) => grid.formatNumber(value),
};

const cases = JSON.parse(readFileSync(0, "utf8"));
const out = cases.map(({ fn, grid: settings, args }) => {
  try {
    return { value: FUNCTIONS[fn](grid.withDefaults(settings), ...args) };
  } catch (err) {
    return { error: String(err.message || err) };
  }
});
process.stdout.write(JSON.stringify(out));
