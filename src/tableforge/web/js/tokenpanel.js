// The selected token as a character (docs/protocol.md, "Tokens as characters"): its name, size in
// cells, bars (value / max, each changed with `token.bar`), conditions (`token.condition`, the game
// system's offered in a list; free text allowed) and, for the GM, who sees each of them (the bars'
// and visibilities go with `token.update`, GM only). The owner and the GMs may change it; the
// others read what the server let them see. The form is rebuilt when the token changes, but never
// under the person using it: while the focus is inside the panel the rebuild waits until it leaves
// (a form sent lets go of the focus, so its result shows).

import { CELL_SIZES } from "./board.js";
import { h, describeError, toast } from "./util.js";

const VISIBILITIES = [["everyone", "Everyone"], ["owners", "Owner and GM"], ["gm", "GM only"]];
const MAX_BARS = 3;

function visibilitySelect(value, attrs) {
  const select = h("select", attrs, ...VISIBILITIES.map(([v, label]) => h("option", { value: v }, label)));
  select.value = value || "everyone";
  return select;
}

/** A bar key from its label: "Hit points" -> "hit_points" (a-z, 0-9, _; at most 32). */
function keyOf(label, taken) {
  let key = label.toLowerCase().replace(/[^a-z0-9]+/g, "_").replace(/^_+|_+$/g, "").slice(0, 28) || "bar";
  while (taken.has(key)) key = `${key.slice(0, 28)}_${Math.floor(Math.random() * 900 + 100)}`;
  return key;
}

/** A bar as token.update takes it: fields without a value left out. */
function clean(bar) {
  return Object.fromEntries(Object.entries(bar).filter(([, v]) => v !== null && v !== undefined));
}

export class TokenPanel {
  constructor({ board, state, socket, system }) {
    this.board = board;
    this.state = state;
    this.socket = socket;
    this.system = system;
    this.el = h("div", { class: "token-panel", id: "token-panel" });
    this.key = null;
    this.dirty = false;
    this.pendingBars = new Map(); // bar key -> the value the last − / + asked for, until it is stored
    // Catch up once the focus has left the panel, and not in the middle of a click on it (the
    // button under the pointer must still be there when the click lands).
    this.pressing = false;
    const later = () => setTimeout(() => {
      if (this.dirty && !this.pressing && !this._typing()) this.show(this.id, { force: true });
    }, 0);
    this.el.addEventListener("focusout", (e) => {
      if (!e.relatedTarget || !this.el.contains(e.relatedTarget)) later();
    });
    this.el.addEventListener("pointerdown", () => {
      this.pressing = true;
      document.addEventListener("pointerup", () => setTimeout(() => {
        this.pressing = false;
        later();
      }, 0), { once: true });
    });
    state.on("system", () => this.show(this.id, { force: true }));
  }

  _typing() {
    const a = document.activeElement;
    return !!a && a !== document.body && this.el.contains(a);
  }

  /** Done with a field or button: let go of the focus so the panel may show the result. */
  _release() {
    if (this._typing()) document.activeElement.blur();
  }

  /** Show the token `id` (null: nothing). */
  show(id, { force = false } = {}) {
    this.id = id;
    const token = id && this.board.shown(id);
    const key = token ? JSON.stringify([id, token.version, token.name, token.bars, token.conditions, token.size, this.state.role]) : null;
    if (!force && key === this.key) return;
    if (this._typing() && id && this.el.dataset.id === id) {
      this.dirty = true; // redrawn when the person leaves the field
      return;
    }
    this.dirty = false;
    if (this.el.dataset.id !== (id || "")) this.pendingBars.clear();
    this.key = key;
    this.el.dataset.id = id || "";
    this.el.replaceChildren(...(token ? this._render(token) : []));
  }

  _ask(type, payload) {
    const me = this.state.me.id;
    return this.socket.request(type, { token_id: this.id, ...payload }, {
      asEvent: (ack) => ack.token && { type: "token.updated", token: ack.token, by: me },
    }).catch((err) => {
      toast(err.code === "conflict" ? "Someone else changed that token first; try again." : describeError(err));
      return null;
    });
  }

  _render(token) {
    const can = this.state.canChange(token);
    const gm = this.state.isGm;
    const vis = token.visibility || {};
    // a player's copy lists only the visibilities they may see: a field left out is the GM's alone
    const secret = (field) => !gm && !!token.visibility && !(field in token.visibility);
    const canName = can && !secret("name");
    const canTag = can && !secret("conditions");
    const out = [h("h4", { class: "token-panel-title" }, "Character")];

    // -- name and size ---------------------------------------------------------------------------------
    const name = h("input", { id: "token-name", maxlength: "64", value: token.name || "", autocomplete: "off", disabled: !canName,
      placeholder: secret("name") ? "Known to the GM only" : "No name" });
    const nameForm = h("form", { class: "token-row", id: "token-name-form" },
      h("label", { for: "token-name" }, "Name"), name,
      canName ? h("button", { type: "submit", class: "secondary", id: "token-name-save" }, "Save") : null);
    nameForm.addEventListener("submit", (e) => {
      e.preventDefault();
      const payload = { name: name.value.trim() };
      if (gm) payload.name_visibility = nameVis.value;
      this._release();
      this._ask("token.update", payload);
    });
    const nameVis = gm ? visibilitySelect(vis.name, { id: "token-name-visibility", "aria-label": "Who sees the name" }) : null;
    if (nameVis) {
      nameVis.addEventListener("change", () => {
        this._release();
        this._ask("token.update", { name_visibility: nameVis.value });
      });
      nameForm.append(nameVis);
    }
    out.push(nameForm);
    if (token.z_index > -1000) {
      const size = h("select", { id: "token-size", disabled: !can },
        ...CELL_SIZES.map((n) => h("option", { value: String(n) }, n < 1 ? `${n} cell` : `${n}×${n} cells`)));
      size.value = String(token.size || 1);
      size.addEventListener("change", () => {
        this._release();
        this.board.resize(token.id, Number(size.value));
      });
      out.push(h("div", { class: "token-row" }, h("label", { for: "token-size" }, "Size"), size));
    }

    // -- bars -------------------------------------------------------------------------------------------------
    const bars = token.bars || [];
    const list = h("ul", { class: "bar-list", id: "token-bars" }, ...bars.map((bar) => this._barRow(token, bar, can, gm)));
    out.push(h("div", { class: "token-section" }, h("span", { class: "token-section-title" }, "Bars"),
      bars.length ? list : h("p", { class: "muted" }, gm ? "No bars yet." : "No bars you can see.")));
    if (gm && bars.length < MAX_BARS) out.push(this._addBar(token));

    // -- conditions --------------------------------------------------------------------------------------
    const conditions = token.conditions || [];
    const tags = h("ul", { class: "condition-list", id: "token-conditions" }, ...conditions.map((c) => h("li", { class: "condition-tag" }, c,
      canTag ? h("button", { type: "button", class: "link condition-remove", "aria-label": `Remove ${c}`,
        onclick: () => {
          this._release();
          this._ask("token.condition", { remove: [c] });
        } }, "×") : null)));
    out.push(h("div", { class: "token-section" }, h("span", { class: "token-section-title" }, "Conditions"),
      conditions.length ? tags : h("p", { class: "muted" }, secret("conditions") ? "Known to the GM only." : "None.")));
    if (canTag) {
      const offered = this.system.conditions.filter((c) => !conditions.some((have) => have.toLowerCase() === c.toLowerCase()));
      const input = h("input", { id: "token-condition", maxlength: "32", list: "token-condition-options", autocomplete: "off",
        placeholder: offered.length ? `e.g. ${offered[0]}` : "e.g. prone" });
      const form = h("form", { class: "token-row", id: "token-condition-form" },
        h("label", { for: "token-condition", class: "visually-hidden" }, "Add a condition"), input,
        h("datalist", { id: "token-condition-options" }, ...offered.map((c) => h("option", { value: c }))),
        h("button", { type: "submit", class: "secondary", id: "token-condition-add" }, "Add condition"));
      form.addEventListener("submit", (e) => {
        e.preventDefault();
        const value = input.value.trim();
        if (!value) return;
        input.value = "";
        this._release();
        this._ask("token.condition", { add: [value] });
      });
      out.push(form);
    }
    if (gm) {
      const condVis = visibilitySelect(vis.conditions, { id: "token-conditions-visibility" });
      condVis.addEventListener("change", () => {
        this._release();
        this._ask("token.update", { conditions_visibility: condVis.value });
      });
      out.push(h("div", { class: "token-row" }, h("label", { for: "token-conditions-visibility" }, "Conditions seen by"), condVis));
    }
    return out;
  }

  _barRow(token, bar, can, gm) {
    const value = h("input", { type: "number", inputmode: "numeric", value: String(bar.value), step: "1", disabled: !can,
      "aria-label": `${bar.label} value`, dataset: { role: "value" } });
    const max = h("input", { type: "number", inputmode: "numeric", value: bar.max ?? "", min: "1", step: "1", disabled: !can,
      "aria-label": `${bar.label} maximum`, placeholder: "max", dataset: { role: "max" } });
    const send = (payload) => this._ask("token.bar", { key: bar.key, ...payload });
    // − and + count from what was last asked for, so quick presses add up before the server answers
    const step = (delta) => {
      const stored = this.board.shown(this.id)?.bars?.find((b) => b.key === bar.key)?.value ?? bar.value;
      const next = (this.pendingBars.get(bar.key) ?? stored) + delta;
      this.pendingBars.set(bar.key, next);
      value.value = String(next);
      send({ value: next }).then(() => {
        if (this.pendingBars.get(bar.key) === next) this.pendingBars.delete(bar.key);
      });
    };
    const form = h("form", { class: "bar-row", dataset: { key: bar.key } },
      h("span", { class: "bar-label" }, bar.label),
      can ? h("button", { type: "button", class: "secondary bar-step", "aria-label": `${bar.label} minus one`,
        onclick: () => step(-1) }, "−") : null,
      value, h("span", { "aria-hidden": "true" }, "/"), max,
      can ? h("button", { type: "button", class: "secondary bar-step", "aria-label": `${bar.label} plus one`,
        onclick: () => step(1) }, "+") : null,
      can ? h("button", { type: "submit", class: "secondary", dataset: { role: "save" } }, "Set") : null);
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const payload = { value: Math.round(Number(value.value)) };
      if (max.value.trim() === "") {
        if (bar.max !== null && bar.max !== undefined) payload.max = null;
      } else if (Number(max.value) !== bar.max) payload.max = Math.round(Number(max.value));
      this.pendingBars.delete(bar.key);
      this._release();
      send(payload);
    });
    if (gm) {
      const select = visibilitySelect(bar.visibility, { "aria-label": `Who sees ${bar.label}`, dataset: { role: "visibility" } });
      select.addEventListener("change", () => {
        this._release();
        const bars = (token.bars || []).map((b) => clean(b.key === bar.key ? { ...b, visibility: select.value } : b));
        this._ask("token.update", { bars });
      });
      // token.update {bars} replaces the list: the list without this bar removes it
      const remove = h("button", { type: "button", class: "link bar-remove", "aria-label": `Remove bar ${bar.label}`,
        title: `Remove bar ${bar.label}`, dataset: { role: "remove" }, onclick: () => {
          this._release();
          this._ask("token.update", { bars: (token.bars || []).filter((b) => b.key !== bar.key).map(clean) });
        } }, "×");
      form.append(select, remove);
    }
    return h("li", {}, form);
  }

  /** GM: add a bar (from the system's token defaults, or a new one). */
  _addBar(token) {
    const label = h("input", { id: "token-bar-label", maxlength: "40", placeholder: "HP", autocomplete: "off" });
    const max = h("input", { id: "token-bar-max", type: "number", min: "1", step: "1", placeholder: "max", inputmode: "numeric" });
    const vis = visibilitySelect("everyone", { id: "token-bar-visibility", "aria-label": "Who sees the new bar" });
    const form = h("form", { class: "token-row bar-add", id: "token-bar-add" },
      h("label", { for: "token-bar-label", class: "visually-hidden" }, "New bar's name"), label,
      h("label", { for: "token-bar-max", class: "visually-hidden" }, "New bar's maximum"), max, vis,
      h("button", { type: "submit", class: "secondary" }, "Add bar"));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const text = label.value.trim();
      if (!text) return;
      const bars = token.bars || [];
      const defaults = this.state.system?.template?.token_defaults?.bars || [];
      const known = defaults.find((b) => b.label?.toLowerCase() === text.toLowerCase());
      const top = max.value.trim() === "" ? (known?.max ?? null) : Math.round(Number(max.value));
      const bar = {
        key: known && !bars.some((b) => b.key === known.key) ? known.key : keyOf(text, new Set(bars.map((b) => b.key))),
        label: text, value: top ?? known?.value ?? 0, max: top, visibility: vis.value,
      };
      if (known?.color) bar.color = known.color;
      this._release();
      this._ask("token.update", { bars: [...bars.map(clean), clean(bar)] });
    });
    return form;
  }
}
