// "Align grid" (GM): while it is the board's tool, dragging the board moves the grid (not the view)
// so its lines fall on the map's own; the arrow keys nudge it by one pixel (Shift: ten), + and -
// change the cell size by one pixel (Shift: ten). Only this page sees the change (`board.gridPreview`)
// until it is saved (Enter, or the Save button), which sends `scene.update {grid}`; Esc cancels.

import { GRID_TYPES } from "./grid.js";
import { clamp } from "./util.js";

const MAX_OFFSET = 1_000_000;
const MIN_SIZE = 8;
const MAX_SIZE = 1000;

export class GridAlign {
  /** `save(grid)`: a promise that stores the settings; `onChange(aligning)`: the panel redraws. */
  constructor({ board, save, onStatus, onChange }) {
    this.board = board;
    this.save = save;
    this.onStatus = onStatus || (() => {});
    this.onChange = onChange || (() => {});
    this.from = null;
    this.pings = false; // a press held still is the start of a drag here, not a ping
  }

  get active() {
    return this.board.tool === this;
  }

  start() {
    const grid = this.board.grid();
    this.board.gridPreview = { ...grid, type: GRID_TYPES.includes(grid.type) && grid.type !== "none" ? grid.type : "square", hidden: false };
    this.board.setTool(this);
    this.board.viewport.classList.add("is-aligning");
    this.board.applyView();
    this._say();
    this.onChange(true);
    this.board.viewport.focus({ preventScroll: true });
  }

  /** Put down without saving (Esc, Cancel, or another tool picked). */
  release() {
    this.board.gridPreview = null;
    this.board.viewport.classList.remove("is-aligning");
    this.board.applyView();
    this.board.renderAll();
    this.onStatus("");
    this.onChange(false);
  }

  cancel() {
    this.from = null;
  }

  async commit() {
    const g = this.board.gridPreview;
    if (!g) return;
    const grid = { type: g.type, size: g.size, ...this._normalOffset(g) };
    const saved = await this.save(grid);
    if (saved && this.active) this.board.setTool(null);
  }

  /** Square grids repeat every `size` pixels: keep the offset within one cell, as the GM would read it. */
  _normalOffset(g) {
    if (g.type !== "square") return { offset_x: Math.round(g.offset_x), offset_y: Math.round(g.offset_y) };
    const wrap = (v) => Math.round(((v % g.size) + g.size) % g.size);
    return { offset_x: wrap(g.offset_x), offset_y: wrap(g.offset_y) };
  }

  _shift(dx, dy) {
    const g = this.board.gridPreview;
    g.offset_x = clamp(Math.round(g.offset_x + dx), -MAX_OFFSET, MAX_OFFSET);
    g.offset_y = clamp(Math.round(g.offset_y + dy), -MAX_OFFSET, MAX_OFFSET);
    this.board.applyView();
    this._say();
  }

  _resize(delta) {
    const g = this.board.gridPreview;
    g.size = clamp(g.size + delta, MIN_SIZE, MAX_SIZE);
    this.board.applyView();
    this.board.renderAll(); // tokens are drawn in cells
    this._say();
  }

  _say() {
    const g = this.board.gridPreview;
    if (!g) return;
    this.onStatus(`Aligning: offset ${Math.round(g.offset_x)}, ${Math.round(g.offset_y)}, cells of ${g.size} px. `
      + "Drag the board or use the arrow keys; + and − change the size; Enter saves, Esc cancels.");
  }

  // -- the pointer and the keys (board-input.js) ------------------------------------------------------
  down(at) {
    const g = this.board.gridPreview;
    this.from = { at, x: g.offset_x, y: g.offset_y };
  }

  drag(at) {
    if (!this.from) return;
    const g = this.board.gridPreview;
    g.offset_x = this.from.x;
    g.offset_y = this.from.y;
    this._shift(at.x - this.from.at.x, at.y - this.from.at.y);
  }

  up(at, moved) {
    if (moved) this.drag(at);
    this.from = null;
  }

  hover() {}

  key(e) {
    if (e.altKey || e.ctrlKey || e.metaKey) return false;
    const step = e.shiftKey ? 10 : 1;
    const arrows = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
    if (arrows[e.key]) this._shift(...arrows[e.key]);
    else if (e.key === "+" || e.key === "=") this._resize(step);
    else if (e.key === "-" || e.key === "_") this._resize(-step);
    else if (e.key === "Enter") this.commit();
    else if (e.key === "Escape") this.board.setTool(null);
    else return false;
    return true;
  }
}
