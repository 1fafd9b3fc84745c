// The ruler: while it is the board's tool, a drag measures from where it started (in the scene's
// units, with grid.js `measure`, the server's twin), and the others see it live as `ruler` frames,
// throttled like the pointer. The last measurement stays drawn until the next one or until the
// ruler is put away (which sends `points: []`). A press held still pings instead (board-input.js).
//
// Keyboard (board focused, ruler up): the arrow keys move the ruler's end by one cell (Shift: five),
// starting from the middle of the view; Space fixes a waypoint; Esc clears, a second Esc puts it away.
//
// Mouse or finger alone: a drag that starts on the end of the ruler drawn (within CONTINUE_PX on
// screen, or a quarter cell) goes on from there, so that end becomes a bend; a drag elsewhere starts
// a new ruler, and a click elsewhere clears it.

import { MAX_WAYPOINTS, cellAt, cellCenter, measure } from "./grid.js";

const SEND_EVERY_MS = 100; // as often as the pointer
const CONTINUE_PX = 16; // how near the ruler's end (on screen) a press continues it

export class RulerTool {
  constructor({ board, socket, onStatus }) {
    this.board = board;
    this.socket = socket;
    this.onStatus = onStatus || (() => {});
    this.points = []; // [x, y] world pixels: the start, waypoints, the end
    this.text = "";
    this.lastSent = 0;
    this.timer = null;
    this.shared = false; // the others have a ruler of ours to put away
    this.continued = false; // the press going on started on the ruler's end (a bend)
    this.pings = true; // a press held still on the board pings, as without a tool
    board.ruler = this;
  }

  get active() {
    return this.board.tool === this;
  }

  toggle() {
    this.board.setTool(this.active ? null : this);
    if (this.active) {
      this.board.viewport.classList.add("is-measuring");
      this.onStatus("Ruler: drag on the board to measure; drag again from its end to add a bend (arrow keys and Space with the keyboard); R or Esc puts it away.");
    }
  }

  /** Put away (another tool was picked, or toggled off): the others stop seeing our ruler. */
  release() {
    this.board.viewport.classList.remove("is-measuring");
    this._clear();
    this.onStatus("");
  }

  // -- the pointer (board-input.js) ----------------------------------------------------------------
  down(at) {
    this.continued = this._nearEnd(at) && this.points.length < MAX_WAYPOINTS;
    if (this.continued) this.points.push([...this.points[this.points.length - 1]]);
    else this.points = [[at.x, at.y], [at.x, at.y]];
  }

  /** Is `at` on the end of the ruler drawn now? */
  _nearEnd(at) {
    if (this.points.length < 2) return false;
    const [x, y] = this.points[this.points.length - 1];
    const reach = Math.max(CONTINUE_PX / (this.board.view.zoom || 1), this.board.grid().size / 4);
    return Math.hypot(at.x - x, at.y - y) <= reach;
  }

  drag(at) {
    if (!this.points.length) this.points = [[at.x, at.y]];
    this.points[this.points.length - 1] = [at.x, at.y];
    this._update();
  }

  up(at, moved) {
    if (!moved && this.continued) {
      this.points.pop(); // a click on the ruler's end: no bend, the ruler stays
      return;
    }
    if (!moved) {
      this._clear(); // a click elsewhere puts the last measurement away
      return;
    }
    this.drag(at);
    this._send(true);
  }

  cancel() {
    this._clear();
  }

  cancelStroke() {
    this._clear();
  }

  hover() {}

  // -- the keyboard ----------------------------------------------------------------------------------
  key(e) {
    if (e.altKey || e.ctrlKey || e.metaKey) return false;
    const g = this.board.grid();
    const step = (e.shiftKey ? 5 : 1) * g.size;
    const arrows = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
    if (arrows[e.key]) {
      if (!this.points.length) {
        const c = this.board.viewCenter();
        const start = g.type === "none" ? [c.x, c.y] : cellCenter(g, cellAt(g, c.x, c.y));
        this.points = [start, [...start]];
      }
      const end = this.points[this.points.length - 1];
      const moved = [end[0] + arrows[e.key][0], end[1] + arrows[e.key][1]];
      // from cell centre to cell centre: on hexes one cell's width lands in the next hex that way
      this.points[this.points.length - 1] = g.type === "none" ? moved : cellCenter(g, cellAt(g, moved[0], moved[1]));
      this._update();
      this._send(true);
      return true;
    }
    if ((e.key === " " || e.key === "Spacebar") && this.points.length >= 2 && this.points.length < MAX_WAYPOINTS) {
      this.points.push([...this.points[this.points.length - 1]]);
      return true;
    }
    if (e.key === "Escape") {
      if (this.points.length) this._clear();
      else this.board.setTool(null);
      return true;
    }
    if (e.key === "r" || e.key === "R") {
      this.board.setTool(null);
      return true;
    }
    return false;
  }

  // -- drawing and sending ----------------------------------------------------------------------------
  _update() {
    if (this.points.length < 2) return;
    this.text = measure(this.board.grid(), this.points).text;
    this.board.marks.show("me", this.points, this.text);
    this.onStatus(`Ruler: ${this.text}.`);
    this._send(false);
  }

  /** At most one frame per SEND_EVERY_MS, always ending with the latest points. */
  _send(now) {
    const wait = this.lastSent + SEND_EVERY_MS - performance.now();
    if (now || wait <= 0) {
      clearTimeout(this.timer);
      this.timer = null;
      this._sendNow();
    } else if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this._sendNow();
      }, wait);
    }
  }

  _sendNow() {
    if (this.points.length < 2 || this.board.state.isSpectator) return;
    this.lastSent = performance.now();
    const points = this.points.map(([x, y]) => [Math.round(x), Math.round(y)]);
    if (this.socket.send("ruler", { points })) this.shared = true;
  }

  _clear() {
    clearTimeout(this.timer);
    this.timer = null;
    this.points = [];
    this.text = "";
    this.board.marks.clear("me");
    if (this.shared) this.socket.send("ruler", { points: [] });
    this.shared = false;
  }
}
