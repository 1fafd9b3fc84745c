// Chat and dice: the room's log (history from the join snapshot, then live events) and the
// message box, where `/roll 2d20kh1+3` (or `/r`) rolls dice on the server: labels (`/roll 1d20+5
// stealth`), exploding dice (3d6!), success counts (6d6>=5), Fudge dice (4dF) and repeats (3#1d20);
// `/gmroll` (or `/gr`) rolls for the GMs' eyes only, `/selfroll` (`/sr`) for one's own, and
// `/w name text` whispers. The server sends each message only to its audience (docs/protocol.md,
// "Whispers and secret rolls"); this page only says who could read what.

import { describeError, formatTime, h, toast } from "./util.js";

const ROLL_COMMAND = /^\/(roll|r|gmroll|gr|selfroll|sr)\s+(.+)$/i;
const WHISPER_COMMAND = /^\/(?:w|whisper|msg)\s+(\S+)\s+([\s\S]+)$/i;
const ROLL_VISIBILITY = { roll: null, r: null, gmroll: "gm", gr: "gm", selfroll: "self", sr: "self" };
const MAX_SHOWN = 500;
const MAX_RECIPIENTS = 20;
export const HELP_TEXT = "Type a message, or: /roll 1d20+5 stealth (also /r; a label after a space), 2d20kh1 (keep "
  + "the highest), 3d6! (sixes explode), 6d6>=5 (count 5s and 6s), 4dF (Fudge), 1d20+1d4+3, 3#1d20 (three times); "
  + "/gmroll 1d20 (the GM sees it), /selfroll 1d20 (only you), /w name text (a whisper; several names: /w ann,bob text).";

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
  /** `visibility`: the <select> that says who sees /roll and the dice buttons (room, gm, self). */
  constructor({ log, form, input, state, socket, visibility, note }) {
    this.log = log;
    this.form = form;
    this.input = input;
    this.state = state;
    this.socket = socket;
    this.visibility = visibility;
    this.note = note;
    this.rendered = new Map(); // message id -> element
    this.history = [];
    this.historyAt = -1;
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    input.addEventListener("keydown", (event) => this._recall(event));
    state.on("chat", (detail) => (detail?.reset ? this.renderAll() : this.add(detail.message)));
    state.on("room", () => this._readOnly());
    state.on("players", () => this._rerenderWhispers());
  }

  /** Spectators watch: the server refuses their messages and rolls, so the box says so. */
  _readOnly() {
    const spectator = this.state.isSpectator;
    for (const el of this.form.querySelectorAll("input, button, select")) el.disabled = spectator;
    this.input.placeholder = spectator ? "Spectators cannot chat or roll" : "Say something, /roll 2d20kh1+3, /w name text";
    if (this.note) this.note.hidden = !spectator;
  }

  /** Names in whisper lines may arrive after the lines (the player list loads with the snapshot). */
  _rerenderWhispers() {
    for (const [id, el] of this.rendered) {
      if (!el.classList.contains("msg-whisper")) continue;
      const message = this.state.messages.get(id);
      if (message) {
        const fresh = this._render(message);
        el.replaceWith(fresh);
        this.rendered.set(id, fresh);
      }
    }
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

  /** Who could read this line, in words (null for the whole room). */
  _audience(message) {
    const visibility = message.visibility || message.roll?.visibility || "room";
    const mine = message.user_id === this.state.me.id;
    if (visibility === "whisper") {
      const others = (message.to || []).filter((id) => id !== message.user_id);
      const names = others.map((id) => (id === this.state.me.id ? "you" : this.state.username(id)));
      return { cls: "msg-whisper", words: mine ? `whisper to ${names.join(", ") || "yourself"}` : `whispers to ${names.join(", ")}` };
    }
    if (visibility === "gm") return { cls: "msg-secret", words: mine ? "to the GM only" : "secret roll: GM only" };
    if (visibility === "self") return { cls: "msg-secret", words: "only you see this" };
    return null;
  }

  _render(message) {
    const mine = message.user_id === this.state.me.id;
    const who = message.username || this.state.username(message.user_id);
    const audience = this._audience(message);
    const head = h("div", { class: "msg-head" },
      h("span", { class: "msg-user" }, who), " ",
      audience ? h("span", { class: "msg-audience" }, audience.words) : null, audience ? " " : null,
      h("time", { class: "msg-time", datetime: message.created_at || "" }, formatTime(message.created_at)));
    const body = message.kind === "roll" && message.roll
      ? h("div", { class: "msg-body" }, h("span", { class: "visually-hidden" }, "rolled "), renderRoll(message.roll))
      : h("div", { class: "msg-body" }, message.text);
    return h("li", {
      class: `msg msg-${message.kind || "chat"}${mine ? " msg-mine" : ""}${audience ? ` ${audience.cls}` : ""}`,
      dataset: { id: message.id, version: String(message.version || 0) },
    }, head, body);
  }

  /** Roll on the server: `visibility` room (everyone), gm (the GMs and me) or self (me); `label`
   *  (a preset's name) is shown with the result, as a label typed after the notation would be. */
  roll(notation, visibility, label) {
    const me = this.state.me;
    const payload = { notation };
    if (label) payload.label = label;
    const chosen = visibility || this.visibility?.value || "room";
    if (chosen !== "room") payload.visibility = chosen;
    return this.socket.request("dice.roll", payload, {
      asEvent: (ack) => ack.roll && {
        type: "dice.rolled", by: me.id, ts: Date.now(),
        roll: { user_id: me.id, username: me.username, visibility: chosen, ...ack.roll },
      },
    });
  }

  /** `/w name[,name…] text`: the names are the room's members, in any case. */
  whisper(names, text) {
    const wanted = names.split(",").map((n) => n.trim().replace(/^@/, "")).filter(Boolean);
    const ids = [];
    const unknown = [];
    for (const name of wanted) {
      const member = this.state.memberByName(name);
      if (member) {
        if (!ids.includes(member.user.id)) ids.push(member.user.id);
      } else unknown.push(name);
    }
    if (unknown.length || !ids.length) {
      const err = new Error(`nobody called ${unknown.join(", ") || names} is in this room`);
      err.code = "unknown_recipient";
      return Promise.reject(err);
    }
    if (ids.length > MAX_RECIPIENTS) return Promise.reject(new Error(`a whisper goes to at most ${MAX_RECIPIENTS} people`));
    const me = this.state.me;
    return this.socket.request("chat.send", { text, to: ids }, {
      asEvent: (ack) => ack.message && { type: "chat.message", by: me.id, message: ack.message },
    });
  }

  async submit() {
    const text = this.input.value.trim();
    if (!text) return;
    const me = this.state.me;
    const rollMatch = text.match(ROLL_COMMAND);
    const whisperMatch = text.match(WHISPER_COMMAND);
    this.input.disabled = true;
    try {
      if (rollMatch) {
        await this.roll(rollMatch[2].trim(), ROLL_VISIBILITY[rollMatch[1].toLowerCase()]);
      } else if (whisperMatch) {
        await this.whisper(whisperMatch[1], whisperMatch[2].trim());
      } else if (/^\/(help|\?)$/i.test(text)) {
        toast(HELP_TEXT, "info", 12000);
      } else if (text.startsWith("/") && !text.startsWith("//")) {
        toast(`Unknown command ${text.split(/\s/)[0]}. Try /roll 1d20+5, /gmroll 1d20, /w name text, or start with // to send a slash.`);
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
      this.input.disabled = this.state.isSpectator;
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
