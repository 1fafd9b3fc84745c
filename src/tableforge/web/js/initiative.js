// The turn order (docs/protocol.md, "Initiative"): the entries with their values, the current turn
// marked (and ringed on the board, tokenart.js), and the buttons: add the selected token (its
// initiative rolled with the game system's formula, or a value typed in), sort, previous / next
// turn, next round, remove, clear. A GM may do everything; a player adds and removes their own
// tokens and ends their own turn. Every change is one `initiative` request carrying the turn
// order's `if_version`, so two GMs pressing Next at once advance one turn.

import { describeError, h, toast } from "./util.js";

export class InitiativePanel {
  constructor({ board, state, socket }) {
    this.board = board;
    this.state = state;
    this.socket = socket;
    this.round = h("span", { class: "muted", id: "initiative-round" });
    this.list = h("ol", { class: "initiative-list", id: "initiative-list", "aria-live": "polite" });
    this.note = h("p", { class: "muted initiative-note", id: "initiative-note", role: "status" });
    this.value = h("input", { id: "initiative-value", type: "number", inputmode: "numeric", step: "1", placeholder: "roll",
      "aria-label": "Initiative value (empty: roll with the system's formula)" });
    const button = (id, label, title, fn, cls = "secondary") => {
      const b = h("button", { type: "button", class: cls, id, title }, label);
      b.addEventListener("click", fn);
      return b;
    };
    this.addButton = button("initiative-add", "Add selected", "Add the selected token (empty value: roll its initiative)", () => this.addSelected());
    this.gmButtons = [
      button("initiative-sort", "Sort", "Sort by initiative", () => this.ask("sort")),
      button("initiative-prev", "◀ Prev", "Previous turn", () => this.ask("prev")),
      button("initiative-next", "Next ▶", "Next turn", () => this.ask("next"), "primary"),
      button("initiative-round-next", "Next round", "Start the next round", () => this.ask("next_round")),
      button("initiative-clear", "Clear", "Empty the turn order", () => {
        if (window.confirm("Clear the turn order?")) this.ask("clear");
      }, "danger"),
    ];
    this.endTurn = button("initiative-end-turn", "End my turn", "Your token's turn is over: the next one's begins", () => this.ask("next"), "primary");
    this.el = h("section", { class: "panel panel-initiative", id: "initiative-panel", "aria-labelledby": "initiative-title" },
      h("h3", { id: "initiative-title" }, "Turn order ", this.round),
      this.list, this.note,
      h("div", { class: "initiative-add" }, this.value, this.addButton),
      h("div", { class: "actions initiative-actions", role: "toolbar", "aria-label": "Turn order" }, ...this.gmButtons, this.endTurn));
    state.on("initiative", (detail) => {
      this.render();
      if (detail?.rolled) this._rolled(detail.rolled);
    });
    for (const topic of ["tokens", "players", "room"]) state.on(topic, () => this.render());
    this.render();
  }

  /** Send one change; `if_version` guards the moves of the turn (a stale one is refused, not repeated). */
  ask(op, extra = {}) {
    const ini = this.state.initiative;
    const payload = { op, ...extra };
    if (ini && ["next", "prev", "next_round"].includes(op)) payload.if_version = ini.version;
    return this.socket.request("initiative", payload, {
      asEvent: (ack) => ack.initiative && { type: "initiative.changed", op, initiative: ack.initiative, by: this.state.me.id },
    }).catch((err) => {
      toast(err.code === "conflict" ? "Someone else changed the turn order first; it shows theirs now." : describeError(err));
      return null;
    });
  }

  async addSelected() {
    const id = this.board.selectedId;
    if (!id) {
      toast("Select a token on the board first, then add it.", "info");
      return;
    }
    const raw = this.value.value.trim();
    const extra = { token_id: id };
    if (raw !== "") extra.value = Math.round(Number(raw));
    const ack = await this.ask("add", extra);
    if (ack) {
      this.value.value = "";
      const entry = ack.initiative.entries.find((e) => e.token_id === id);
      if (raw === "" && entry) this.note.textContent = `${this._name(id)} rolled ${entry.value}.`;
    }
  }

  _rolled(rolled) {
    this.note.textContent = `${this._name(rolled.token_id)} rolled ${rolled.total} (${rolled.notation}).`;
  }

  _name(tokenId) {
    const token = this.state.tokens.get(tokenId);
    if (!token) return "a token";
    return token.name || this.state.assets.get(token.asset_id)?.name || "a token";
  }

  render() {
    const state = this.state;
    const ini = state.initiative || { round: 1, current: null, entries: [] };
    const gm = state.isGm;
    this.round.textContent = ini.entries.length ? `(round ${ini.round})` : "";
    this.list.replaceChildren(...ini.entries.map((entry) => {
      const token = state.tokens.get(entry.token_id);
      const current = entry.id === ini.current;
      const mine = token && token.owner_id === state.me.id;
      const remove = (gm || mine) && !state.isSpectator
        ? h("button", { type: "button", class: "link initiative-remove", "aria-label": `Remove ${this._name(entry.token_id)} from the turn order`,
          onclick: () => this.ask("remove", { entry_id: entry.id }) }, "×")
        : null;
      const name = h("button", { type: "button", class: "link initiative-name", title: "Show this token",
        onclick: () => {
          if (token) {
            this.board.select(entry.token_id);
            this.board.focusToken(entry.token_id);
          }
        } }, this._name(entry.token_id));
      return h("li", { class: `initiative-entry${current ? " is-current" : ""}${mine ? " is-mine" : ""}`,
        dataset: { tokenId: entry.token_id, entryId: entry.id }, "aria-current": current ? "true" : null },
      h("span", { class: "initiative-value" }, String(entry.value)), name, current ? h("span", { class: "badge" }, "turn") : null, remove);
    }));
    if (!ini.entries.length) this.list.replaceChildren(h("li", { class: "muted" }, "Nobody yet: select a token and add it."));
    for (const b of this.gmButtons) b.hidden = !gm;
    const turnToken = state.tokens.get(state.turnTokenId);
    this.endTurn.hidden = gm || !turnToken || turnToken.owner_id !== state.me.id;
    this.addButton.disabled = state.isSpectator;
    this.value.disabled = state.isSpectator;
  }
}
