// The board's input: pointer gestures (pan, drag a token, pinch zoom), the wheel, the keyboard
// on the board and on tokens. A drawing tool (fogtools.js) may take the pointer and the keys
// over: while `board.tool` is set, single-pointer gestures and board keys go to it first.
//
// Play tools: a dropped token snaps to the grid unless Alt is held; holding the pointer still on
// the board (HOLD_MS) pings that spot; on the focused board R toggles the ruler and P pings.

import { clamp } from "./util.js";

const PREVIEW_INTERVAL_MS = 50; // at most 20 preview frames per second per drag
const POINTER_INTERVAL_MS = 100;
const STEP = 10;
const BIG_STEP = 50;
const HOLD_MS = 600; // a press held this long without moving is a ping

export class BoardInput {
  constructor(board, mapLayer) {
    this.board = board;
    this.mapLayer = mapLayer;
    this.active = new Map(); // pointer id -> {x, y} on screen
    this.gesture = null;
    this.lastPointerSent = 0;
    this.holdTimer = null;
    this.lastAt = null; // the last spot the pointer was over (world), for the P key
    this._bind();
  }

  _bind() {
    const b = this.board;
    const vp = b.viewport;
    vp.addEventListener("pointerdown", (e) => this._down(e));
    vp.addEventListener("pointermove", (e) => this._move(e));
    vp.addEventListener("pointerup", (e) => this._up(e));
    vp.addEventListener("pointercancel", (e) => this._up(e, true));
    vp.addEventListener("dblclick", (e) => b.tool?.dblclick?.(e, b.toWorld(e.clientX, e.clientY)));
    vp.addEventListener("wheel", (e) => {
      e.preventDefault();
      const factor = Math.exp(-clamp(e.deltaY, -100, 100) * 0.0025);
      b.zoomAt(factor, e.clientX, e.clientY);
    }, { passive: false });
    // A drawing tool hears the keys first (capture), even with a token focused: while drawing,
    // the arrow keys move its cursor rather than a token.
    vp.addEventListener("keydown", (e) => {
      if (b.tool && b.tool.key(e)) {
        e.preventDefault();
        e.stopPropagation();
      }
    }, true);
    vp.addEventListener("keydown", (e) => {
      if (e.target !== vp) return;
      const pan = e.shiftKey ? 200 : 60;
      const moves = { ArrowLeft: [pan, 0], ArrowRight: [-pan, 0], ArrowUp: [0, pan], ArrowDown: [0, -pan] };
      if (e.ctrlKey || e.metaKey || e.altKey) return;
      if (moves[e.key]) {
        e.preventDefault();
        b.panBy(...moves[e.key]);
      } else if (e.key === "+" || e.key === "=") b.zoomAt(1.2);
      else if (e.key === "-") b.zoomAt(1 / 1.2);
      else if (e.key === "r" || e.key === "R") {
        e.preventDefault();
        b.ruler?.toggle();
      } else if (e.key === "p" || e.key === "P") {
        e.preventDefault();
        b.marks.ping(this.lastAt || b.viewCenter());
      }
    });
    let last = null;
    new ResizeObserver(() => {
      const rect = vp.getBoundingClientRect();
      if (!rect.width) return;
      if (!b.fitted && b.state.room) {
        b.fitted = true;
        b.fit();
      } else if (last) {
        // keep what was in the middle in the middle (phone rotation, side panel changes)
        b.panBy((rect.width - last.width) / 2, (rect.height - last.height) / 2);
      }
      last = { width: rect.width, height: rect.height };
    }).observe(vp);
  }

  _tokenAt(target) {
    const el = target.closest?.(".token");
    return el && this.board.world.contains(el) ? el.dataset.id : null;
  }

  _down(e) {
    const b = this.board;
    if (e.button !== undefined && e.button > 1) return;
    this.active.set(e.pointerId, { x: e.clientX, y: e.clientY });
    try {
      b.viewport.setPointerCapture(e.pointerId);
    } catch {
      // synthetic events may not be capturable
    }
    if (this.active.size === 2) {
      // a second finger: pinch zoom instead of whatever the first one started
      this._cancelDrag();
      const [p, q] = [...this.active.values()];
      this.gesture = { kind: "pinch", dist: Math.hypot(p.x - q.x, p.y - q.y) };
      return;
    }
    if (this.active.size > 2) return;
    if (b.tool && e.button === 0) {
      e.preventDefault();
      b.viewport.focus({ preventScroll: true });
      this.gesture = { kind: "tool", sx: e.clientX, sy: e.clientY, moved: false };
      if (b.tool.pings) this._holdToPing(this.gesture, e);
      b.tool.down(b.toWorld(e.clientX, e.clientY), e);
      return;
    }
    const id = this._tokenAt(e.target);
    const token = id && b.shown(id);
    if (token && b.state.canChange(token) && token.z_index > this.mapLayer && e.button === 0) {
      e.preventDefault();
      const start = b.toWorld(e.clientX, e.clientY);
      this.gesture = { kind: "token", id, start, origin: { x: token.x, y: token.y }, moved: false, sx: e.clientX, sy: e.clientY };
      b.dragging = { id, version: b.state.tokens.get(id).version, lastSent: 0, timer: null, pending: null };
      b.select(id);
      b.focusToken(id);
    } else {
      this.gesture = { kind: "pan", x: e.clientX, y: e.clientY, sx: e.clientX, sy: e.clientY, moved: false, id };
      if (e.button === 0) this._holdToPing(this.gesture, e);
    }
  }

  /** A press that stays put for HOLD_MS pings its spot (the release then does nothing else). */
  _holdToPing(gesture, e) {
    clearTimeout(this.holdTimer);
    const at = this.board.toWorld(e.clientX, e.clientY);
    this.holdTimer = setTimeout(() => {
      if (this.gesture !== gesture || gesture.moved) return;
      gesture.pinged = true;
      this.board.marks.ping(at);
    }, HOLD_MS);
  }

  _move(e) {
    const b = this.board;
    if (this.active.has(e.pointerId)) this.active.set(e.pointerId, { x: e.clientX, y: e.clientY });
    const g = this.gesture;
    if (!g) {
      if (b.tool) b.tool.hover?.(b.toWorld(e.clientX, e.clientY));
      this._sharePointer(e);
      return;
    }
    if (g.kind === "pinch") {
      if (this.active.size < 2) return;
      const [p, q] = [...this.active.values()];
      const dist = Math.hypot(p.x - q.x, p.y - q.y);
      if (g.dist > 0) b.zoomAt(dist / g.dist, (p.x + q.x) / 2, (p.y + q.y) / 2);
      g.dist = dist;
      return;
    }
    if (!g.moved && Math.hypot(e.clientX - g.sx, e.clientY - g.sy) < 4) return;
    if (g.pinged) return;
    g.moved = true;
    clearTimeout(this.holdTimer);
    if (g.kind === "tool") {
      b.tool?.drag(b.toWorld(e.clientX, e.clientY), e);
      return;
    }
    if (g.kind === "pan") {
      b.panBy(e.clientX - g.x, e.clientY - g.y);
      g.x = e.clientX;
      g.y = e.clientY;
      return;
    }
    // dragging a token
    const at = b.toWorld(e.clientX, e.clientY);
    const x = Math.round(g.origin.x + at.x - g.start.x);
    const y = Math.round(g.origin.y + at.y - g.start.y);
    b.overrides.set(g.id, { ...(b.overrides.get(g.id) || {}), x, y, expect: null });
    b.renderToken(g.id);
    b.tokenEls.get(g.id)?.classList.add("is-dragging");
    this._preview(g.id, x, y);
    this._sharePointer(e);
  }

  /** Throttle preview frames to one per PREVIEW_INTERVAL_MS, always sending the latest spot. */
  _preview(id, x, y) {
    const d = this.board.dragging;
    if (!d) return;
    d.pending = { x, y };
    const wait = d.lastSent + PREVIEW_INTERVAL_MS - performance.now();
    if (wait <= 0) {
      this._sendPreview();
    } else if (!d.timer) {
      d.timer = setTimeout(() => {
        d.timer = null;
        this._sendPreview();
      }, wait);
    }
  }

  _sendPreview() {
    const b = this.board;
    const d = b.dragging;
    if (!d || !d.pending) return;
    d.lastSent = performance.now();
    b.socket.send("token.move", { token_id: d.id, x: d.pending.x, y: d.pending.y, preview: true });
    b.previewsSent = (b.previewsSent || 0) + 1;
    d.pending = null;
  }

  _up(e, cancelled = false) {
    const b = this.board;
    this.active.delete(e.pointerId);
    const g = this.gesture;
    if (!g) return;
    if (g.kind === "pinch") {
      if (this.active.size === 0) this.gesture = null;
      return;
    }
    this.gesture = null;
    clearTimeout(this.holdTimer);
    if (g.pinged) {
      if (g.kind === "tool") b.tool?.cancelStroke?.();
      return;
    }
    if (g.kind === "tool") {
      if (cancelled) b.tool?.cancel();
      else b.tool?.up(b.toWorld(e.clientX, e.clientY), g.moved, e);
      return;
    }
    if (g.kind === "pan") {
      if (!g.moved && !cancelled) {
        if (g.id) {
          b.select(g.id);
          b.focusToken(g.id);
        } else {
          b.select(null);
        }
      }
      return;
    }
    const d = b.dragging;
    b.dragging = null;
    if (d) clearTimeout(d.timer);
    b.tokenEls.get(g.id)?.classList.remove("is-dragging");
    if (!g.moved || cancelled) {
      if (cancelled) b.overrides.delete(g.id);
      b.renderToken(g.id);
      return;
    }
    const override = b.overrides.get(g.id);
    const token = b.state.tokens.get(g.id);
    if (override && token) {
      // the server stores what is committed: the snapped spot (or, with Alt held, where it was let go)
      const to = b.snapFor(token, override.x, override.y, { free: e.altKey });
      b.change(g.id, to, { ifVersion: d?.version });
    }
  }

  _cancelDrag() {
    const b = this.board;
    if (this.gesture?.kind === "token") {
      const id = this.gesture.id;
      clearTimeout(b.dragging?.timer);
      b.dragging = null;
      b.overrides.delete(id);
      b.tokenEls.get(id)?.classList.remove("is-dragging");
      b.renderToken(id);
    } else if (this.gesture?.kind === "tool") {
      b.tool?.cancelStroke?.();
    }
    this.gesture = null;
  }

  _sharePointer(e) {
    const b = this.board;
    if (e.pointerType !== "touch") this.lastAt = b.toWorld(e.clientX, e.clientY);
    // spectators may not send pointers (the server refuses them); touch has no hover to share
    if (!b.sharePointer || e.pointerType === "touch" || b.state.isSpectator) return;
    const now = performance.now();
    if (now - this.lastPointerSent < POINTER_INTERVAL_MS) return;
    this.lastPointerSent = now;
    const at = b.toWorld(e.clientX, e.clientY);
    b.socket.send("pointer", { x: Math.round(at.x), y: Math.round(at.y) });
  }

  /** Keys on a focused token. */
  tokenKey(e, id) {
    const b = this.board;
    if (e.ctrlKey || e.metaKey) return;
    const step = e.shiftKey ? BIG_STEP : STEP;
    const arrows = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
    if (e.altKey && !arrows[e.key]) return;
    let handled = true;
    // on a grid an arrow moves one cell (snapped); Alt + arrow moves 10 px freely (Shift: 50)
    if (arrows[e.key]) b.moveBy(id, ...arrows[e.key], { free: e.altKey });
    else if (e.key === "r") b.rotateBy(id, 15);
    else if (e.key === "R") b.rotateBy(id, -15);
    else if (e.key === "+" || e.key === "=") b.scaleBy(id, 1.1);
    else if (e.key === "-" || e.key === "_") b.scaleBy(id, 1 / 1.1);
    else if (e.key === "]" || e.key === "PageUp") b.layer(id, 1);
    else if (e.key === "[" || e.key === "PageDown") b.layer(id, -1);
    else if (e.key === "Delete" || e.key === "Backspace") b.remove(id);
    else if ((e.key === "h" || e.key === "H") && b.state.isGm) b.toggleHidden(id);
    else if (e.key === "p" || e.key === "P") {
      const token = b.shown(id);
      if (token) b.marks.ping({ x: token.x, y: token.y });
    }
    else if (e.key === "Enter" || e.key === " ") b.select(id);
    else if (e.key === "Escape") {
      b.select(null);
      b.viewport.focus();
    } else handled = false;
    if (handled) {
      e.preventDefault();
      e.stopPropagation();
    }
  }
}
