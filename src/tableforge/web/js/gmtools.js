// The GM's toolbar over the board: the GM layer (place new tokens hidden; show or hide the
// hidden ones) and the fog tools (reveal / hide a rectangle or a polygon, the view, everything).
// Only GMs get it; the server refuses these actions to anyone else anyway (403 not_gm).

import { describeFog } from "./fog.js";
import { FogTool } from "./fogtools.js";
import { h } from "./util.js";

const TOOLS = [
  { id: "reveal-rect", op: "reveal", shape: "rect", label: "Reveal ▭", aria: "Reveal a rectangle" },
  { id: "hide-rect", op: "hide", shape: "rect", label: "Hide ▭", aria: "Hide a rectangle under fog" },
  { id: "reveal-poly", op: "reveal", shape: "polygon", label: "Reveal ⬠", aria: "Reveal a polygon" },
  { id: "hide-poly", op: "hide", shape: "polygon", label: "Hide ⬠", aria: "Hide a polygon under fog" },
];

export class GmTools {
  constructor({ board, state, socket }) {
    this.board = board;
    this.state = state;
    this.status = h("p", { class: "gm-status", id: "fog-status", role: "status", "aria-live": "polite" });
    this.fogTool = new FogTool({
      board, state, socket,
      onStatus: (text) => this._status(text),
      onDone: () => this.pick(null),
    });
    this.current = null;

    this.newHidden = h("input", { type: "checkbox", id: "gm-new-hidden" });
    this.showHidden = h("input", { type: "checkbox", id: "gm-show-hidden", checked: true });
    this.newHidden.addEventListener("change", () => {
      board.newHidden = this.newHidden.checked;
      this._layerNote();
      state.emit("gm-layer");
    });
    this.showHidden.addEventListener("change", () => {
      board.showHidden = this.showHidden.checked;
      board.renderAll();
    });

    this.toolButtons = new Map();
    for (const tool of TOOLS) {
      const b = h("button", { type: "button", class: "secondary tool", id: `fog-${tool.id}`, "aria-pressed": "false",
        "aria-label": tool.aria, title: tool.aria }, tool.label);
      b.addEventListener("click", () => this.pick(this.current === tool.id ? null : tool.id));
      this.toolButtons.set(tool.id, b);
    }
    const finish = h("button", { type: "button", class: "primary", id: "fog-finish", hidden: true }, "Finish");
    finish.addEventListener("click", () => this.fogTool.finish());
    const cancel = h("button", { type: "button", class: "secondary", id: "fog-cancel", hidden: true }, "Stop drawing");
    cancel.addEventListener("click", () => this.pick(null));
    this.finish = finish;
    this.cancel = cancel;

    const action = (id, label, title, fn) => {
      const b = h("button", { type: "button", class: "secondary", id, title }, label);
      b.addEventListener("click", fn);
      return b;
    };
    const fog = () => this.state.scene?.fog || { base: "revealed", shapes: [] };
    const revealView = action("fog-reveal-view", "Reveal view", "Reveal what the board shows now",
      () => this.fogTool.applyToView("reveal"));
    const hideView = action("fog-hide-view", "Hide view", "Hide what the board shows now under fog",
      () => this.fogTool.applyToView("hide"));
    const revealAll = action("fog-reveal-all", "Reveal all", "Remove all fog: players see the whole map", () => {
      const f = fog();
      if ((f.shapes.length || f.base === "hidden")
        && !window.confirm("Reveal the whole scene to the players? The fog you drew is dropped.")) return;
      this.fogTool.changeFog("reveal_all");
    });
    const hideAll = action("fog-hide-all", "Hide all", "Cover the whole scene in fog", () => {
      if (fog().shapes.length && !window.confirm("Cover the whole scene in fog? The areas you revealed are dropped.")) return;
      this.fogTool.changeFog("hide_all");
    });
    this.fogSummary = h("span", { class: "muted gm-fog-summary", id: "fog-summary" });
    this.layerNote = h("span", { class: "gm-layer-note", id: "gm-layer-note", hidden: true }, "New tokens are hidden");

    this.el = h("section", { class: "gm-tools", id: "gm-tools", "aria-label": "Game master tools", hidden: true },
      h("div", { class: "gm-row" },
        h("span", { class: "gm-label" }, "GM layer"),
        h("label", { class: "check", for: "gm-new-hidden" }, this.newHidden, "Place new tokens hidden"),
        h("label", { class: "check", for: "gm-show-hidden" }, this.showHidden, "Show hidden tokens"),
        this.layerNote),
      h("div", { class: "gm-row", role: "toolbar", "aria-label": "Fog of war" },
        h("span", { class: "gm-label" }, "Fog"),
        ...this.toolButtons.values(), revealView, hideView, revealAll, hideAll, finish, cancel),
      h("div", { class: "gm-row" }, this.fogSummary, this.status));

    state.on("room", () => this._refresh());
    state.on("scene", (detail) => {
      if (detail?.switched) this.fogTool.cancel(); // corners drawn on the old scene mean nothing here
      this._refresh();
    });
    state.on("fog", () => this._refresh());
    this._refresh();
  }

  /** Choose a fog tool by id, or none. */
  pick(id) {
    const tool = TOOLS.find((t) => t.id === id) || null;
    this.current = tool ? tool.id : null;
    for (const [key, b] of this.toolButtons) b.setAttribute("aria-pressed", String(key === this.current));
    this.fogTool.use(tool ? { op: tool.op, shape: tool.shape } : null);
    this.finish.hidden = !tool || tool.shape !== "polygon";
    this.cancel.hidden = !tool;
    if (tool) this.board.viewport.focus({ preventScroll: true });
  }

  _layerNote() {
    this.layerNote.hidden = !this.newHidden.checked;
  }

  _status(text) {
    this.status.textContent = text;
  }

  _refresh() {
    const gm = this.state.isGm;
    this.el.hidden = !gm;
    if (!gm && this.current) this.pick(null);
    this.fogSummary.textContent = gm ? `${describeFog(this.state.scene?.fog)}.` : "";
  }
}
