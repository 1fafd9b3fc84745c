// Chat and dice: the room's log (history from the join snapshot, then live events) and the
// message box, where `/roll 2d20kh1+3` (or `/r`) rolls dice on the server: labels (`/roll 1d20+5
// stealth`), exploding dice (3d6!), success counts (6d6>=5), Fudge dice (4dF) and repeats (3#1d20).

import { describeError, formatTime, h, toast } from "./util.js";

const ROLL_COMMAND = /^\/(?:roll|r)\s+(.+)$/i;
const MAX_SHOWN = 500;

const FLAG_WORDS = {
  dropped: "dropped", exploded: "exploded", extra: "added by an explosion", capped: "explosion limit reached",
  success: "success", failure: "failure",
};

/** v1 rolls (no per-die results): kept dice stand out, dropped ones are struck through. */
function legacyChips(rolled, kept) {
  const left = new Map();
  for (const value of kept || []) left.set(value, (left.get(value) || 0) + 1);
  return (rolled || []).map((value) => {
    const n = left.get(value) || 0;
    if (n > 0) left.set(value, n - 1);
    return dieChip({ value, dropped: n === 0 }, false);
  });
}

/** A Fudge die shows +, − or 0; the others their number. */
function face(value, fudge) {
  if (!fudge) return String(value);
  return value > 0 ? "+" : value < 0 ? "−" : "0";
}

/** One die: kept dice stand out, dropped ones are struck through, an exploded one carries "!",
 *  the die an explosion added a "↳", successes and failures their colour; each also in words. */
function dieChip(die, fudge) {
  const flags = Object.keys(FLAG_WORDS).filter((flag) => die[flag]);
  const classes = ["die", die.dropped ? "die-dropped" : "die-kept", ...flags.filter((f) => f !== "dropped").map((f) => `die-${f}`)];
  const text = face(die.value, fudge);
  const words = flags.map((flag) => FLAG_WORDS[flag]).join(", ");
  return h("span", { class: classes.join(" "), title: words || "kept" },
    die.extra ? h("span", { class: "die-mark", "aria-hidden": "true" }, "↳") : null,
    die.dropped ? h("s", {}, text) : text,
    die.exploded ? h("span", { class: "die-mark", "aria-hidden": "true" }, "!") : null,
    words ? h("span", { class: "visually-hidden" }, ` (${words})`) : null);
}

function termNode(term, first, alone) {
  const sign = term.sign < 0 ? "−" : first ? "" : "+";
  if ("constant" in term) return h("span", { class: "roll-term roll-constant" }, `${sign}${sign ? " " : ""}${term.constant}`);
  const fudge = term.sides === "F";
  const chips = Array.isArray(term.results) ? term.results.map((die) => dieChip(die, fudge)) : legacyChips(term.rolls, term.kept);
  // A lone counting term's count is the total, shown once; among other terms it gets its own.
  const counted = "successes" in term && (!alone || term.failures)
    ? h("span", { class: "roll-count" }, `${term.subtotal} ${Math.abs(term.subtotal) === 1 ? "success" : "successes"}`
      + (term.failures ? ` (${term.successes} − ${term.failures} failed)` : ""))
    : null;
  return h("span", { class: "roll-term" }, sign ? `${sign} ` : "", h("span", { class: "roll-dice-name" }, term.dice), " ", ...chips, counted);
}

function totalNode(total, counting) {
  const unit = counting ? (Math.abs(total) === 1 ? " success" : " successes") : "";
  return h("span", { class: "roll-total", "aria-label": `total ${total}${unit}` }, "= ", h("strong", {}, String(total)), unit);
}

/** A roll as the table sees it: its label, the notation, each set of dice with its total. */
export function renderRoll(roll) {
  const terms = Array.isArray(roll.terms) && roll.terms.length ? roll.terms : null;
  const head = [
    roll.label ? h("span", { class: "roll-label" }, roll.label) : null,
    h("span", { class: "roll-notation" }, roll.notation),
  ];
  if (!terms) { // the oldest rolls: groups of dice and a modifier
    const parts = (roll.rolls || []).map((group, i) => h("span", { class: "roll-term" }, ...legacyChips(group, (roll.kept || [])[i])));
    if (roll.modifier) parts.push(h("span", { class: "roll-term roll-constant" }, roll.modifier > 0 ? `+ ${roll.modifier}` : `− ${-roll.modifier}`));
    return h("div", { class: "roll" }, ...head, h("span", { class: "roll-terms" }, ...parts), totalNode(roll.total, false));
  }
  const sets = [];
  for (const term of terms) {
    const index = term.set || 0;
    (sets[index] = sets[index] || []).push(term);
  }
  const totals = Array.isArray(roll.totals) && roll.totals.length === sets.length ? roll.totals : [roll.total];
  const counting = terms.some((term) => "successes" in term);
  if (sets.length === 1) {
    return h("div", { class: "roll" }, ...head,
      h("span", { class: "roll-terms" }, ...sets[0].map((term, i) => termNode(term, i === 0, sets[0].length === 1))),
      totalNode(roll.total, counting));
  }
  return h("div", { class: "roll roll-repeat" }, ...head,
    h("ol", { class: "roll-sets" }, ...sets.map((set, n) => h("li", { class: "roll-set" },
      h("span", { class: "roll-terms" }, ...(set || []).map((term, i) => termNode(term, i === 0, (set || []).length === 1))),
      totalNode(totals[n], counting)))));
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
        toast("Type a message, or roll dice: /roll 1d20+5 stealth (a label after a space), 2d20kh1 (keep the "
          + "highest), 3d6! (sixes explode), 6d6>=5 (count 5s and 6s), 4dF (Fudge), 1d20+1d4+3, 3#1d20 (three times).", "info", 12000);
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
