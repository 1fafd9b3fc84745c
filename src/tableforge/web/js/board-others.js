// Other people on the board: the tokens someone is dragging right now (their preview frames,
// shown until the committed move or a timeout) and their pointers. Neither is stored by the
// server; both may be dropped. A scene switch forgets them all.

import { h } from "./util.js";

const REMOTE_DRAG_TIMEOUT_MS = 2000;
const POINTER_TIMEOUT_MS = 3000;

export class Others {
  constructor(board) {
    this.board = board;
    this.drags = new Map(); // token id -> {x, y, by, timer}
    this.pointers = new Map(); // user id -> {el, timer}
  }

  /** Someone's drag of this token, if any: {x, y, by}. */
  drag(id) {
    return this.drags.get(id);
  }

  onEphemeral(event) {
    const b = this.board;
    if (event.type === "token.moving") {
      if (!b.shown(event.token_id) || b.dragging?.id === event.token_id) return;
      const entry = this.drags.get(event.token_id) || {};
      clearTimeout(entry.timer);
      const timer = setTimeout(() => this.clearDrag(event.token_id), REMOTE_DRAG_TIMEOUT_MS);
      this.drags.set(event.token_id, { x: event.x, y: event.y, by: event.by, timer });
      b.renderToken(event.token_id);
    } else if (event.type === "pointer") {
      this._showPointer(event.user_id || event.by, event.x, event.y);
    }
  }

  clearDrag(id) {
    const entry = this.drags.get(id);
    if (!entry) return;
    clearTimeout(entry.timer);
    this.drags.delete(id);
    this.board.renderToken(id);
  }

  /** Another scene on the board: nobody's drag or pointer carries over. */
  reset() {
    for (const entry of this.drags.values()) clearTimeout(entry.timer);
    this.drags.clear();
    for (const entry of this.pointers.values()) {
      clearTimeout(entry.timer);
      entry.el.hidden = true;
    }
  }

  _showPointer(userId, x, y) {
    const b = this.board;
    if (!userId || userId === b.state.me.id) return;
    let entry = this.pointers.get(userId);
    if (!entry) {
      const el = h("div", { class: "remote-pointer" }, h("span", {}, b.state.username(userId)));
      b.pointerLayer.append(el);
      entry = { el, timer: null };
      this.pointers.set(userId, entry);
    }
    entry.el.style.transform = `translate(${x}px, ${y}px) scale(${1 / b.view.zoom})`;
    entry.el.hidden = false;
    clearTimeout(entry.timer);
    entry.timer = setTimeout(() => {
      entry.el.hidden = true;
    }, POINTER_TIMEOUT_MS);
  }
}
