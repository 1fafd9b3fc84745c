// Rulers and pings on the board: this page's own ruler (ruler.js measures it), the others' rulers
// from their `ruler` frames (drawn with the server's `text`, so every page shows the same number),
// and pings (`board.ping`), drawn as a pulse for a few seconds. None of it is stored: a ruler whose
// owner went quiet is dropped after RULER_IDLE_MS, a scene switch drops them all.

import { h } from "./util.js";

const SVG = "http://www.w3.org/2000/svg";
const RULER_IDLE_MS = 30000;
const PING_SHOWN_MS = 4000;
const PING_EVERY_MS = 500; // at most two pings a second from this page
const MAX_PINGS = 20; // pulses on screen at once

function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  return node;
}

export class Marks {
  constructor(board) {
    this.board = board;
    this.lines = svg("svg", { class: "board-marks-lines", width: 1, height: 1, overflow: "visible" });
    this.el = h("div", { class: "board-marks", "aria-hidden": "true" });
    this.el.append(this.lines);
    // what the others measure, in words, for screen readers (the drawing itself is aria-hidden)
    this.live = h("p", { class: "visually-hidden", role: "status", "aria-live": "polite", id: "ruler-announce" });
    board.world.append(this.el);
    board.viewport.append(this.live);
    this.rulers = new Map(); // user id (or "me") -> {group, label, timer, text}
    this.lastPing = 0;
    this.pingsShown = 0; // counted for tests and the curious: pulses drawn on this page
  }

  /** A `ruler` or `board.ping` frame from someone else. */
  onFrame(event) {
    const state = this.board.state;
    const who = event.user_id || event.by;
    if (!who || who === state.me.id) return;
    if (event.scene_id && state.sceneId && event.scene_id !== state.sceneId) return;
    if (event.type === "board.ping") {
      this._pulse(event.x, event.y, state.username(who));
      return;
    }
    if (!Array.isArray(event.points) || event.points.length < 2) {
      this.clear(who);
      return;
    }
    this.show(who, event.points, event.text || "", state.username(who));
    this.live.textContent = `${state.username(who)} measures ${event.text}`;
  }

  /** Draw a ruler through `points` ([x, y] world pixels) with its distance `text`. */
  show(key, points, text, who) {
    let entry = this.rulers.get(key);
    if (!entry) {
      const group = svg("g", { class: `ruler${key === "me" ? " is-mine" : ""}`, "data-user": key });
      const line = svg("polyline", { class: "ruler-line" });
      group.append(line);
      this.lines.append(group);
      const label = h("div", { class: `ruler-label${key === "me" ? " is-mine" : ""}`, dataset: { user: key } });
      this.el.append(label);
      entry = { group, line, label, timer: null, text: "" };
      this.rulers.set(key, entry);
    }
    entry.line.setAttribute("points", points.map(([x, y]) => `${x},${y}`).join(" "));
    for (const dot of entry.group.querySelectorAll("circle")) dot.remove();
    for (const [x, y] of [points[0], points[points.length - 1]]) entry.group.append(svg("circle", { class: "ruler-end", cx: x, cy: y, r: 4 }));
    entry.text = text;
    entry.label.textContent = key === "me" || !who ? text : `${text} (${who})`;
    const [lx, ly] = points[points.length - 1];
    entry.at = { x: lx, y: ly };
    this._place(entry);
    clearTimeout(entry.timer);
    if (key !== "me") entry.timer = setTimeout(() => this.clear(key), RULER_IDLE_MS);
  }

  clear(key) {
    const entry = this.rulers.get(key);
    if (!entry) return;
    clearTimeout(entry.timer);
    entry.group.remove();
    entry.label.remove();
    this.rulers.delete(key);
  }

  /** The distance someone's ruler shows (tests read it; "me" is this page's). */
  textOf(key) {
    return this.rulers.get(key)?.text ?? null;
  }

  /** Ping a spot: everyone viewing this scene sees a pulse there (spectators may not send one). */
  ping(at) {
    const now = performance.now();
    if (now - this.lastPing < PING_EVERY_MS) return;
    this.lastPing = now;
    const x = Math.round(at.x);
    const y = Math.round(at.y);
    this._pulse(x, y, "you");
    const state = this.board.state;
    if (!state.isSpectator) this.board.socket.send("board.ping", { x, y });
  }

  _pulse(x, y, who) {
    while (this.el.querySelectorAll(".ping").length >= MAX_PINGS) this.el.querySelector(".ping").remove();
    const el = h("div", { class: "ping", dataset: { by: who } }, h("span", { class: "ping-ring" }), h("span", { class: "ping-name" }, who));
    el.style.transform = `translate(${x}px, ${y}px) scale(${1 / this.board.view.zoom})`;
    el.dataset.x = String(x);
    el.dataset.y = String(y);
    this.el.append(el);
    this.pingsShown += 1;
    this.live.textContent = who === "you" ? "You pinged the board." : `${who} pinged the board.`;
    setTimeout(() => el.remove(), PING_SHOWN_MS);
  }

  _place(entry) {
    entry.label.style.transform = `translate(${entry.at.x}px, ${entry.at.y}px) scale(${1 / this.board.view.zoom})`;
  }

  /** The zoom changed: labels and pulses keep their size on screen. */
  onView() {
    for (const entry of this.rulers.values()) this._place(entry);
    for (const el of this.el.querySelectorAll(".ping")) {
      el.style.transform = `translate(${el.dataset.x}px, ${el.dataset.y}px) scale(${1 / this.board.view.zoom})`;
    }
  }

  /** Another scene on the board (or its grid changed): the others' rulers measured the old one. */
  onScene() {
    const sceneId = this.board.state.sceneId;
    if (this.sceneId !== sceneId) {
      for (const key of [...this.rulers.keys()]) if (key !== "me") this.clear(key);
      this.sceneId = sceneId;
    }
  }
}
