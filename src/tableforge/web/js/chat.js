// Chat and dice: the room's log (history from the join snapshot, then live events) and the
// message box, where `/roll 2d20kh1+3` (or `/r`) rolls dice on the server.

import { describeError, formatTime, h, toast } from "./util.js";

const ROLL_COMMAND = /^\/(?:roll|r)\s+(.+)$/i;
const MAX_SHOWN = 500;

/** The dice of one term as chips: kept dice stand out, dropped ones are struck through. */
function diceChips(rolled, kept) {
  const left = new Map();
  for (const value of kept || []) left.set(value, (left.get(value) || 0) + 1);
  return (rolled || []).map((value) => {
    const n = left.get(value) || 0;
    const isKept = n > 0;
    if (isKept) left.set(value, n - 1);
    return h("span", {
      class: `die ${isKept ? "die-kept" : "die-dropped"}`,
      title: isKept ? "kept" : "dropped",
    }, isKept ? String(value) : h("s", {}, String(value)), isKept ? null : h("span", { class: "visually-hidden" }, " (dropped)"));
  });
}

export function renderRoll(roll) {
  const parts = [];
  const terms = Array.isArray(roll.terms) && roll.terms.length ? roll.terms : null;
  if (terms) {
    terms.forEach((term, i) => {
      const sign = term.sign < 0 ? "−" : i ? "+" : "";
      if ("constant" in term) {
        parts.push(h("span", { class: "roll-term roll-constant" }, `${sign}${sign ? " " : ""}${term.constant}`));
      } else {
        parts.push(h("span", { class: "roll-term" },
          sign ? `${sign} ` : "", h("span", { class: "roll-dice-name" }, term.dice), " ",
          ...diceChips(term.rolls, term.kept)));
      }
    });
  } else {
    (roll.rolls || []).forEach((group, i) => parts.push(h("span", { class: "roll-term" }, ...diceChips(group, (roll.kept || [])[i]))));
    if (roll.modifier) parts.push(h("span", { class: "roll-term roll-constant" }, roll.modifier > 0 ? `+ ${roll.modifier}` : `− ${-roll.modifier}`));
  }
  return h("div", { class: "roll" },
    h("span", { class: "roll-notation" }, roll.notation),
    h("span", { class: "roll-terms" }, ...parts),
    h("span", { class: "roll-total", "aria-label": `total ${roll.total}` }, "= ", h("strong", {}, String(roll.total))));
}

export class Chat {
  constructor({ log, form, input, state, socket }) {
    this.log = log;
    this.form = form;
    this.input = input;
    this.state = state;
    this.socket = socket;
    this.rendered = new Map(); // message id -> element
    this.history = [];
    this.historyAt = -1;
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    input.addEventListener("keydown", (event) => this._recall(event));
    state.on("chat", (detail) => (detail?.reset ? this.renderAll() : this.add(detail.message)));
  }

  renderAll() {
    for (const message of this.state.sortedMessages()) this.add(message, { scroll: false });
    this._trim();
    this.log.scrollTop = this.log.scrollHeight;
  }

  add(message, { scroll = true } = {}) {
    if (!message || this.rendered.has(message.id)) return;
    const el = this._render(message);
    this.rendered.set(message.id, el);
    // keep version order even if a history line arrives after newer ones
    let before = null;
    for (const node of this.log.children) {
      if (Number(node.dataset.version) > (message.version || 0)) {
        before = node;
        break;
      }
    }
    const nearBottom = this.log.scrollHeight - this.log.scrollTop - this.log.clientHeight < 80;
    this.log.insertBefore(el, before);
    this._trim();
    if (scroll && (nearBottom || message.user_id === this.state.me.id)) this.log.scrollTop = this.log.scrollHeight;
  }

  _trim() {
    while (this.log.children.length > MAX_SHOWN) {
      const first = this.log.firstElementChild;
      this.rendered.delete(first.dataset.id);
      first.remove();
    }
  }

  _render(message) {
    const mine = message.user_id === this.state.me.id;
    const who = message.username || this.state.username(message.user_id);
    const head = h("div", { class: "msg-head" },
      h("span", { class: "msg-user" }, who), " ",
      h("time", { class: "msg-time", datetime: message.created_at || "" }, formatTime(message.created_at)));
    const body = message.kind === "roll" && message.roll
      ? h("div", { class: "msg-body" }, h("span", { class: "visually-hidden" }, "rolled "), renderRoll(message.roll))
      : h("div", { class: "msg-body" }, message.text);
    return h("li", {
      class: `msg msg-${message.kind || "chat"}${mine ? " msg-mine" : ""}`,
      dataset: { id: message.id, version: String(message.version || 0) },
    }, head, body);
  }

  async submit() {
    const text = this.input.value.trim();
    if (!text) return;
    const me = this.state.me;
    const rollMatch = text.match(ROLL_COMMAND);
    this.input.disabled = true;
    try {
      if (rollMatch) {
        await this.socket.request("dice.roll", { notation: rollMatch[1].trim() }, {
          asEvent: (ack) => ack.roll && {
            type: "dice.rolled", by: me.id, ts: Date.now(),
            roll: { user_id: me.id, username: me.username, ...ack.roll },
          },
        });
      } else if (/^\/(help|\?)$/i.test(text)) {
        toast("Type a message, or roll dice with /roll 2d20kh1+3 (also /r 4d6kh3, 1d8+2, 3d6).", "info");
      } else if (text.startsWith("/") && !text.startsWith("//")) {
        toast(`Unknown command ${text.split(/\s/)[0]}. Try /roll 1d20+5, or start with // to send a slash.`);
        return;
      } else {
        await this.socket.request("chat.send", { text: text.startsWith("//") ? text.slice(1) : text }, {
          asEvent: (ack) => ack.message && { type: "chat.message", by: me.id, message: ack.message },
        });
      }
      this.history.push(text);
      this.historyAt = -1;
      this.input.value = "";
    } catch (err) {
      toast(describeError(err));
    } finally {
      this.input.disabled = false;
      this.input.focus();
    }
  }

  _recall(event) {
    if (!this.history.length || (event.key !== "ArrowUp" && event.key !== "ArrowDown")) return;
    if (event.key === "ArrowUp") this.historyAt = this.historyAt < 0 ? this.history.length - 1 : Math.max(0, this.historyAt - 1);
    else this.historyAt = this.historyAt < 0 ? -1 : this.historyAt + 1;
    if (this.historyAt >= this.history.length) this.historyAt = -1;
    this.input.value = this.historyAt < 0 ? "" : this.history[this.historyAt];
    event.preventDefault();
  }
}
