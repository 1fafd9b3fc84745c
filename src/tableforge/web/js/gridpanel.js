// The grid of the scene the GM views (docs/protocol.md, "Grid settings"): type, cell size, offset,
// colour and opacity (or lines hidden), units per cell, unit and diagonal rule, sent with
// `scene.update {grid}`; and "Align grid" (gridalign.js) to line the grid up with the map by hand.
// GMs only: players see the grid drawn, and its unit on the ruler.

import { DEFAULT_GRID, withDefaults } from "./grid.js";
import { GridAlign } from "./gridalign.js";
import { h } from "./util.js";

const TYPES = [["square", "Squares"], ["hex_pointy", "Hexes (pointy top)"], ["hex_flat", "Hexes (flat top)"], ["none", "No grid"]];
const DIAGONALS = [["5-5-5", "Every step one cell (5-5-5)"], ["5-10-5", "Every second diagonal two (5-10-5)"], ["euclidean", "Straight line (euclidean)"]];

function field(id, label, input) {
  return h("div", { class: "grid-field" }, h("label", { for: id }, label), input);
}

export class GridPanel {
  constructor({ board, state, scenes }) {
    this.board = board;
    this.state = state;
    const num = (id, attrs) => h("input", { id, type: "number", inputmode: "decimal", ...attrs });
    this.inputs = {
      type: h("select", { id: "grid-type" }, ...TYPES.map(([v, label]) => h("option", { value: v }, label))),
      size: num("grid-size", { min: "8", max: "1000", step: "1" }),
      offset_x: num("grid-offset-x", { min: "-1000000", max: "1000000", step: "1" }),
      offset_y: num("grid-offset-y", { min: "-1000000", max: "1000000", step: "1" }),
      color: h("input", { id: "grid-color", type: "color" }),
      opacity: num("grid-opacity", { min: "0", max: "1", step: "0.05" }),
      hidden: h("input", { id: "grid-hidden", type: "checkbox" }),
      units_per_cell: num("grid-units", { min: "0.01", max: "10000", step: "any" }),
      unit: h("input", { id: "grid-unit", maxlength: "16", autocomplete: "off" }),
      diagonal: h("select", { id: "grid-diagonal" }, ...DIAGONALS.map(([v, label]) => h("option", { value: v }, label))),
    };
    const i = this.inputs;
    this.status = h("p", { class: "muted grid-status", id: "grid-status", role: "status", "aria-live": "polite" });
    this.alignButton = h("button", { type: "button", class: "secondary", id: "grid-align", "aria-pressed": "false" }, "Align grid");
    this.saveAlign = h("button", { type: "button", class: "primary", id: "grid-align-save", hidden: true }, "Save alignment");
    this.cancelAlign = h("button", { type: "button", class: "secondary", id: "grid-align-cancel", hidden: true }, "Cancel");
    this.form = h("form", { class: "grid-form", id: "grid-form", "aria-label": "Grid of the scene you view" },
      h("div", { class: "grid-fields" },
        field("grid-type", "Type", i.type), field("grid-size", "Cell size (px)", i.size),
        field("grid-offset-x", "Offset x", i.offset_x), field("grid-offset-y", "Offset y", i.offset_y),
        field("grid-color", "Colour", i.color), field("grid-opacity", "Opacity (0–1)", i.opacity),
        field("grid-units", "Units per cell", i.units_per_cell), field("grid-unit", "Unit", i.unit),
        field("grid-diagonal", "Diagonals", i.diagonal),
        h("label", { class: "check", for: "grid-hidden" }, i.hidden, "Hide the lines")),
      h("div", { class: "actions" },
        h("button", { type: "submit", class: "secondary", id: "grid-apply" }, "Set grid"),
        this.alignButton, this.saveAlign, this.cancelAlign));
    this.el = h("section", { class: "panel panel-grid", id: "grid-panel", "aria-labelledby": "grid-title", hidden: true },
      h("h3", { id: "grid-title" }, "Grid"), this.form, this.status);

    this.align = new GridAlign({
      board,
      save: (grid) => scenes.update(state.sceneId, { grid }).then((ack) => !!ack),
      onStatus: (text) => {
        this.status.textContent = text;
        this.render(); // the offset fields follow the drag
      },
      onChange: (aligning) => this._aligning(aligning),
    });
    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      if (this.align.active) board.setTool(null);
      scenes.update(state.sceneId, { grid: this.read() }).then((ack) => {
        if (ack) this.status.textContent = "Grid saved.";
      });
    });
    this.alignButton.addEventListener("click", () => (this.align.active ? board.setTool(null) : this.align.start()));
    this.saveAlign.addEventListener("click", () => this.align.commit());
    this.cancelAlign.addEventListener("click", () => board.setTool(null));
    state.on("scene", (detail) => {
      if (detail?.switched && this.align.active) board.setTool(null); // the preview was the old scene's grid
      this.render();
    });
    state.on("room", () => this.render());
    this.render();
  }

  /** The settings in the form, as `scene.update` takes them (the server checks each; bad_grid says which). */
  read() {
    const i = this.inputs;
    const number = (input, fallback) => (input.value.trim() === "" ? fallback : Number(input.value));
    const now = withDefaults(this.state.scene?.grid);
    return {
      type: i.type.value,
      size: Math.round(number(i.size, now.size)),
      offset_x: Math.round(number(i.offset_x, 0)),
      offset_y: Math.round(number(i.offset_y, 0)),
      color: /^#[0-9a-fA-F]{6}$/.test(i.color.value) ? i.color.value.toLowerCase() : DEFAULT_GRID.color,
      opacity: number(i.opacity, now.opacity),
      hidden: i.hidden.checked,
      units_per_cell: number(i.units_per_cell, now.units_per_cell),
      unit: i.unit.value.trim() || now.unit,
      diagonal: i.diagonal.value,
    };
  }

  _aligning(on) {
    this.alignButton.setAttribute("aria-pressed", String(on));
    this.alignButton.textContent = on ? "Stop aligning" : "Align grid";
    this.saveAlign.hidden = !on;
    this.cancelAlign.hidden = !on;
    this.render();
  }

  render() {
    const gm = this.state.isGm;
    this.el.hidden = !gm || !this.state.scene;
    if (!gm) {
      if (this.align.active) this.board.setTool(null);
      return;
    }
    if (this.form.contains(document.activeElement) && document.activeElement.tagName !== "BUTTON") return; // typing
    const g = withDefaults(this.board.gridPreview || this.state.scene?.grid);
    const i = this.inputs;
    i.type.value = g.type;
    i.size.value = String(g.size);
    i.offset_x.value = String(Math.round(g.offset_x));
    i.offset_y.value = String(Math.round(g.offset_y));
    i.color.value = /^#[0-9a-fA-F]{6}$/.test(g.color) ? g.color : DEFAULT_GRID.color;
    i.opacity.value = String(g.opacity);
    i.hidden.checked = !!g.hidden;
    i.units_per_cell.value = String(g.units_per_cell);
    i.unit.value = g.unit;
    i.diagonal.value = g.diagonal;
  }
}
