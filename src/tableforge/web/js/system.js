// The room's game system (docs/protocol.md, "Game-system templates"): its name in the room bar,
// and its template for the other tools: dice preset buttons (a preset's label goes with its roll),
// the conditions the token panel offers, the token size new tokens start with. Loaded once per
// room over HTTP (GET /api/systems/{id}); a room without a system, or one whose system this user
// may not read, plays with the defaults.

import { api } from "./api.js";
import { describeError, h, toast } from "./util.js";

const MAX_PRESETS = 50;

export class SystemInfo {
  /** `roll(notation, label)`: rolls a preset (chat.js). */
  constructor({ state, roll }) {
    this.state = state;
    this.roll = roll;
    this.loadedFor = undefined;
    this.name = h("span", { class: "system-badge", id: "room-system", hidden: true });
    this.presets = h("div", { class: "dice-presets", id: "dice-presets", role: "group", "aria-label": "Dice presets of the game system", hidden: true });
    state.on("room", (room) => this._load(room?.game_system_id || null));
    state.on("room", () => this._readOnly());
  }

  async _load(systemId) {
    if (systemId === this.loadedFor) return;
    this.loadedFor = systemId;
    if (!systemId) {
      this._set(null);
      return;
    }
    try {
      const system = await api.system(systemId);
      if (this.loadedFor === systemId) this._set(system);
    } catch {
      // a private system of someone else: the room plays with the defaults
      if (this.loadedFor === systemId) this._set({ id: systemId, name: "a private game system", template: {} });
    }
  }

  _set(system) {
    this.state.system = system;
    this.name.hidden = !system;
    this.name.textContent = system ? `System: ${system.name}` : "";
    const presets = Array.isArray(system?.template?.dice_presets) ? system.template.dice_presets.slice(0, MAX_PRESETS) : [];
    this.presets.replaceChildren(...presets.map((p) => {
      const b = h("button", { type: "button", class: "secondary preset-button", title: `${p.label}: ${p.notation}`,
        "aria-label": `Roll ${p.label} (${p.notation})` }, p.label);
      b.addEventListener("click", () => this.roll(p.notation, p.label).catch((err) => toast(describeError(err))));
      return b;
    }));
    this.presets.hidden = presets.length === 0;
    this._readOnly();
    this.state.emit("system", system);
  }

  /** The conditions the system names (the token panel offers them; free text is allowed too). */
  get conditions() {
    const list = this.state.system?.template?.conditions;
    return Array.isArray(list) ? list.filter((c) => typeof c === "string") : [];
  }

  _readOnly() {
    for (const b of this.presets.querySelectorAll("button")) b.disabled = this.state.isSpectator;
  }
}
