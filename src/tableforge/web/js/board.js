// The board: a DOM world layer under a pan/zoom transform. Tokens are focusable elements
// (tab to one, arrow keys move it). Dragging sends throttled preview moves and one committed
// move on drop; changes to one token are queued so each carries the right `if_version`.

import { clamp, h, toast, describeError } from "./util.js";

const PREVIEW_INTERVAL_MS = 50; // at most 20 preview frames per second per drag
const POINTER_INTERVAL_MS = 100;
const REMOTE_DRAG_TIMEOUT_MS = 2000;
const POINTER_TIMEOUT_MS = 3000;
const MAP_LAYER = -1000; // tokens at or below this z_index are maps: pointer drags pan over them
const GRID = 50;
const STEP = 10;
const BIG_STEP = 50;
const TOKEN_SIZE = 70;
const MIN_ZOOM = 0.1;
const MAX_ZOOM = 5;

export class Board {
  constructor({ viewport, state, socket, onSelect }) {
    this.viewport = viewport;
    this.state = state;
    this.socket = socket;
    this.onSelect = onSelect || (() => {});
    this.world = h("div", { class: "board-world" });
    this.pointerLayer = h("div", { class: "board-pointers", "aria-hidden": "true" });
    this.world.append(this.pointerLayer);
    this.viewport.replaceChildren(this.world);
    this.view = { x: 0, y: 0, zoom: 1 };
    this.fitted = false;
    this.tokenEls = new Map();
    this.overrides = new Map(); // token id -> {x?, y?, rotation?, scale?, z_index?, expect?}
    this.queues = new Map(); // token id -> {inflight, patch, nextVersion, ifVersion}
    this.remote = new Map(); // token id -> {x, y, by, timer}
    this.pointers = new Map(); // user id -> {el, timer}
    this.active = new Map(); // pointer id -> {x, y} on screen
    this.gesture = null;
    this.selectedId = null;
    this.sharePointer = true;
    this.lastPointerSent = 0;
    this._bind();
    this.applyView();
    state.on("tokens", (detail) => this._onTokens(detail));
    state.on("assets", () => this.renderAll());
  }

  // -- coordinates ---------------------------------------------------------------------------------
  toWorld(clientX, clientY) {
    const rect = this.viewport.getBoundingClientRect();
    return { x: (clientX - rect.left - this.view.x) / this.view.zoom, y: (clientY - rect.top - this.view.y) / this.view.zoom };
  }

  viewCenter() {
    const rect = this.viewport.getBoundingClientRect();
    return this.toWorld(rect.left + rect.width / 2, rect.top + rect.height / 2);
  }

  applyView() {
    const { x, y, zoom } = this.view;
    this.world.style.transform = `translate(${x}px, ${y}px) scale(${zoom})`;
    const size = GRID * zoom;
    this.viewport.style.backgroundSize = `${size}px ${size}px`;
    this.viewport.style.backgroundPosition = `${x}px ${y}px`;
    this.viewport.dataset.zoom = zoom.toFixed(2);
  }

  zoomAt(factor, clientX, clientY) {
    const rect = this.viewport.getBoundingClientRect();
    const cx = clientX ?? rect.left + rect.width / 2;
    const cy = clientY ?? rect.top + rect.height / 2;
    const before = this.toWorld(cx, cy);
    this.view.zoom = clamp(this.view.zoom * factor, MIN_ZOOM, MAX_ZOOM);
    this.view.x = cx - rect.left - before.x * this.view.zoom;
    this.view.y = cy - rect.top - before.y * this.view.zoom;
    this.applyView();
  }

  panBy(dx, dy) {
    this.view.x += dx;
    this.view.y += dy;
    this.applyView();
  }

  /** Centre the view on the tokens (or on the origin when the board is empty). */
  fit() {
    const rect = this.viewport.getBoundingClientRect();
    const tokens = [...this.state.tokens.values()];
    if (!tokens.length || !rect.width) {
      this.view = { x: rect.width / 2, y: rect.height / 2, zoom: 1 };
      this.applyView();
      return;
    }
    let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
    for (const t of tokens) {
      const { w, hgt } = this._size(t);
      minX = Math.min(minX, t.x - w / 2);
      maxX = Math.max(maxX, t.x + w / 2);
      minY = Math.min(minY, t.y - hgt / 2);
      maxY = Math.max(maxY, t.y + hgt / 2);
    }
    const pad = 40;
    const zoom = clamp(Math.min((rect.width - pad * 2) / Math.max(1, maxX - minX),
      (rect.height - pad * 2) / Math.max(1, maxY - minY)), MIN_ZOOM, 1.5);
    this.view = { zoom, x: rect.width / 2 - ((minX + maxX) / 2) * zoom, y: rect.height / 2 - ((minY + maxY) / 2) * zoom };
    this.applyView();
  }

  // -- rendering --------------------------------------------------------------------------------------
  _size(token) {
    const asset = this.state.assets.get(token.asset_id);
    const scale = token.scale || 1;
    return { w: (asset?.width || TOKEN_SIZE) * scale, hgt: (asset?.height || TOKEN_SIZE) * scale };
  }

  /** What the page shows for a token: the stored state, our pending change, or someone's drag. */
  shown(id) {
    const token = this.state.tokens.get(id);
    if (!token) return null;
    const override = this.overrides.get(id);
    if (override) {
      const queue = this.queues.get(id);
      const busy = this.dragging?.id === id || (queue && (queue.inflight || queue.patch));
      if (busy || (override.expect && token.version < override.expect)) {
        return { ...token, ...override, _local: true };
      }
      this.overrides.delete(id);
    }
    const remote = this.remote.get(id);
    if (remote) return { ...token, x: remote.x, y: remote.y, _remoteBy: remote.by };
    return token;
  }

  _onTokens(detail = {}) {
    if (detail.reset || !detail.id) {
      this.renderAll();
      if (!this.fitted && this.viewport.getBoundingClientRect().width) {
        this.fitted = true;
        this.fit();
      }
      return;
    }
    const remote = this.remote.get(detail.id);
    if (remote && (detail.type !== "token.moved" || remote.by === detail.by)) this._clearRemote(detail.id);
    if (detail.type === "token.removed") {
      this.overrides.delete(detail.id);
      this.queues.delete(detail.id);
    }
    this.renderAll();
  }

  renderAll() {
    const seen = new Set();
    const order = [...this.state.tokens.values()]
      .map((t, i) => ({ t, i }))
      .sort((a, b) => (this.shown(a.t.id)?.z_index ?? 0) - (this.shown(b.t.id)?.z_index ?? 0) || a.i - b.i)
      .map(({ t }) => t.id);
    for (const id of order) {
      seen.add(id);
      this.renderToken(id);
    }
    for (const [id, el] of this.tokenEls) {
      if (!seen.has(id)) {
        const hadFocus = el.contains(document.activeElement);
        el.remove();
        this.tokenEls.delete(id);
        if (this.selectedId === id) this.select(null);
        if (hadFocus) this.viewport.focus();
      }
    }
    // Keep the DOM (and so the tab order) in z order without moving a focused node needlessly.
    const current = [...this.world.querySelectorAll(":scope > .token")].map((el) => el.dataset.id);
    if (current.join() !== order.join()) {
      const focused = document.activeElement;
      for (const id of order) this.world.insertBefore(this.tokenEls.get(id), this.pointerLayer);
      if (focused && focused.classList?.contains("token") && document.activeElement !== focused) focused.focus();
    }
    this.viewport.classList.toggle("is-empty", this.state.tokens.size === 0);
    if (this.selectedId) this.onSelect(this.selectedId);
  }

  renderToken(id) {
    const token = this.shown(id);
    if (!token) return;
    let el = this.tokenEls.get(id);
    const asset = this.state.assets.get(token.asset_id);
    if (!el) {
      el = h("div", { class: "token", tabindex: "0", role: "button", dataset: { id } });
      el.append(h("img", { alt: "", draggable: "false" }), h("span", { class: "token-badge", "aria-hidden": "true" }));
      el.addEventListener("keydown", (event) => this._onKey(event, id));
      el.addEventListener("focus", () => this.select(id));
      this.tokenEls.set(id, el);
      this.world.insertBefore(el, this.pointerLayer);
    }
    const img = el.firstElementChild;
    const src = asset?.url || "";
    if (img.getAttribute("src") !== src) {
      if (src) img.setAttribute("src", src);
      else img.removeAttribute("src");
    }
    const { w, hgt } = this._size(token);
    el.style.width = `${w}px`;
    el.style.height = `${hgt}px`;
    el.style.transform = `translate(${token.x - w / 2}px, ${token.y - hgt / 2}px) rotate(${token.rotation || 0}deg)`;
    el.style.zIndex = String(token.z_index + 1_000_001);
    const mine = this.state.canChange(token);
    const isMap = token.z_index <= MAP_LAYER;
    el.classList.toggle("is-map", isMap);
    el.classList.toggle("is-mine", mine);
    el.classList.toggle("is-selected", this.selectedId === id);
    el.classList.toggle("is-remote-drag", !!token._remoteBy);
    el.classList.toggle("is-local", !!token._local);
    const badge = el.lastElementChild;
    badge.textContent = token._remoteBy ? `${this.state.username(token._remoteBy)} is moving this` : "";
    const name = asset?.name || "token";
    const owner = this.state.username(token.owner_id);
    el.setAttribute("aria-label", `${isMap ? "Map" : "Token"} ${name}, placed by ${owner}, at ${Math.round(token.x)}, ${Math.round(token.y)}`
      + (token._remoteBy ? `, being moved by ${this.state.username(token._remoteBy)}` : "")
      + (mine ? ". Arrow keys move it; R rotates; + and - resize; Delete removes." : "."));
    el.title = `${name} (${owner})`;
    el.dataset.x = String(Math.round(token.x));
    el.dataset.y = String(Math.round(token.y));
  }

  select(id) {
    if (this.selectedId === id) {
      this.onSelect(id);
      return;
    }
    const before = this.selectedId && this.tokenEls.get(this.selectedId);
    if (before) before.classList.remove("is-selected");
    this.selectedId = id;
    const el = id && this.tokenEls.get(id);
    if (el) el.classList.add("is-selected");
    this.onSelect(id);
  }

  focusToken(id) {
    const el = this.tokenEls.get(id);
    if (el) el.focus({ preventScroll: true });
  }

  // -- changing tokens ----------------------------------------------------------------------------
  /** Queue a change; at most one request per token in flight, later changes merge. */
  change(id, patch, { ifVersion } = {}) {
    const token = this.state.tokens.get(id);
    if (!token) return;
    if (!this.state.canChange(token)) {
      toast(describeError({ code: "not_token_owner" }));
      return;
    }
    const queue = this.queues.get(id) || { inflight: false, patch: null, nextVersion: null, ifVersion: null };
    this.queues.set(id, queue);
    queue.patch = { ...(queue.patch || {}), ...patch };
    if (ifVersion !== undefined && queue.ifVersion === null) queue.ifVersion = ifVersion;
    this.overrides.set(id, { ...(this.overrides.get(id) || {}), ...patch, expect: null });
    this.renderAll();
    if (!queue.inflight) this._flush(id);
  }

  _flush(id) {
    const queue = this.queues.get(id);
    const token = this.state.tokens.get(id);
    if (!queue || !queue.patch || !token) return;
    const patch = queue.patch;
    queue.patch = null;
    queue.inflight = true;
    const base = queue.ifVersion ?? Math.max(token.version, queue.nextVersion || 0);
    queue.ifVersion = null;
    const moveOnly = Object.keys(patch).every((k) => k === "x" || k === "y") && "x" in patch && "y" in patch;
    const me = this.state.me.id;
    const request = moveOnly
      ? this.socket.request("token.move", { token_id: id, x: patch.x, y: patch.y, if_version: base }, {
        asEvent: () => ({ type: "token.moved", token_id: id, x: patch.x, y: patch.y, token_version: base + 1, by: me }),
      })
      : this.socket.request("token.update", { token_id: id, ...patch, if_version: base }, {
        asEvent: (ack) => ack.token && { type: "token.updated", token: ack.token, by: me },
      });
    request.then((ack) => {
      queue.nextVersion = ack.token?.version ?? base + 1;
      const override = this.overrides.get(id);
      if (override) override.expect = queue.nextVersion;
    }).catch((err) => {
      this.overrides.delete(id);
      queue.patch = null;
      queue.nextVersion = null;
      toast(err.code === "conflict"
        ? "Someone else moved or changed that token first; it shows their version now."
        : describeError(err));
    }).finally(() => {
      queue.inflight = false;
      if (queue.patch) this._flush(id);
      else this.renderAll();
    });
  }

  moveBy(id, dx, dy) {
    const token = this.shown(id);
    if (token) this.change(id, { x: Math.round(token.x + dx), y: Math.round(token.y + dy) });
  }

  rotateBy(id, degrees) {
    const token = this.shown(id);
    if (token) this.change(id, { rotation: (((token.rotation || 0) + degrees) % 360 + 360) % 360 });
  }

  scaleBy(id, factor) {
    const token = this.shown(id);
    if (token) this.change(id, { scale: clamp(Math.round((token.scale || 1) * factor * 1000) / 1000, 0.01, 100) });
  }

  layer(id, delta) {
    const token = this.shown(id);
    if (!token) return;
    const isMap = token.z_index <= MAP_LAYER;
    let z = token.z_index + delta;
    if (!isMap && z <= MAP_LAYER) z = MAP_LAYER + 1; // a token never sinks under the maps by accident
    this.change(id, { z_index: z });
  }

  remove(id) {
    const token = this.state.tokens.get(id);
    if (!token) return;
    if (!this.state.canChange(token)) {
      toast(describeError({ code: "not_token_owner" }));
      return;
    }
    const next = this._neighbour(id);
    this.socket.request("token.remove", { token_id: id }, {
      asEvent: () => ({ type: "token.removed", token_id: id, by: this.state.me.id }),
    }).then(() => {
      if (next) this.focusToken(next);
    }).catch((err) => toast(describeError(err)));
  }

  _neighbour(id) {
    const ids = [...this.world.querySelectorAll(":scope > .token")].map((el) => el.dataset.id);
    const i = ids.indexOf(id);
    return ids[i + 1] || ids[i - 1] || null;
  }

  /** Put an asset on the board as a token (or a map, under everything). */
  place(asset, { asMap = false, at } = {}) {
    const where = at || this.viewCenter();
    const longest = Math.max(asset.width || TOKEN_SIZE, asset.height || TOKEN_SIZE);
    let scale = asMap ? 1 : clamp(TOKEN_SIZE / longest, 0.01, 100);
    if (asMap && longest > 4000) scale = 4000 / longest;
    let z = 0;
    const zs = [...this.state.tokens.values()].map((t) => t.z_index);
    if (asMap) z = Math.min(MAP_LAYER, ...zs.filter((v) => v <= MAP_LAYER).map((v) => v - 1));
    else z = Math.max(0, ...zs.filter((v) => v > MAP_LAYER).map((v) => v + 1));
    z = clamp(z, -1_000_000, 1_000_000);
    return this.socket.request("token.add", {
      asset_id: asset.id, x: Math.round(where.x), y: Math.round(where.y), scale: Math.round(scale * 1000) / 1000, z_index: z,
    }, { asEvent: (ack) => ack.token && { type: "token.added", token: ack.token, by: this.state.me.id } })
      .then((ack) => {
        if (ack.token) {
          this.select(ack.token.id);
          this.focusToken(ack.token.id);
        }
        return ack.token;
      });
  }

  // -- other people -----------------------------------------------------------------------------------
  onEphemeral(event) {
    if (event.type === "token.moving") {
      if (!this.state.tokens.has(event.token_id) || this.dragging?.id === event.token_id) return;
      const entry = this.remote.get(event.token_id) || {};
      clearTimeout(entry.timer);
      const timer = setTimeout(() => this._clearRemote(event.token_id), REMOTE_DRAG_TIMEOUT_MS);
      this.remote.set(event.token_id, { x: event.x, y: event.y, by: event.by, timer });
      this.renderToken(event.token_id);
    } else if (event.type === "pointer") {
      this._showPointer(event.user_id || event.by, event.x, event.y);
    }
  }

  _clearRemote(id) {
    const entry = this.remote.get(id);
    if (!entry) return;
    clearTimeout(entry.timer);
    this.remote.delete(id);
    this.renderToken(id);
  }

  _showPointer(userId, x, y) {
    if (!userId || userId === this.state.me.id) return;
    let entry = this.pointers.get(userId);
    if (!entry) {
      const el = h("div", { class: "remote-pointer" }, h("span", {}, this.state.username(userId)));
      this.pointerLayer.append(el);
      entry = { el, timer: null };
      this.pointers.set(userId, entry);
    }
    entry.el.style.transform = `translate(${x}px, ${y}px) scale(${1 / this.view.zoom})`;
    entry.el.hidden = false;
    clearTimeout(entry.timer);
    entry.timer = setTimeout(() => {
      entry.el.hidden = true;
    }, POINTER_TIMEOUT_MS);
  }

  // -- input --------------------------------------------------------------------------------------------
  _bind() {
    const vp = this.viewport;
    vp.addEventListener("pointerdown", (e) => this._down(e));
    vp.addEventListener("pointermove", (e) => this._move(e));
    vp.addEventListener("pointerup", (e) => this._up(e));
    vp.addEventListener("pointercancel", (e) => this._up(e, true));
    vp.addEventListener("wheel", (e) => {
      e.preventDefault();
      const factor = Math.exp(-clamp(e.deltaY, -100, 100) * 0.0025);
      this.zoomAt(factor, e.clientX, e.clientY);
    }, { passive: false });
    vp.addEventListener("keydown", (e) => {
      if (e.target !== vp) return;
      const pan = e.shiftKey ? 200 : 60;
      const moves = { ArrowLeft: [pan, 0], ArrowRight: [-pan, 0], ArrowUp: [0, pan], ArrowDown: [0, -pan] };
      if (moves[e.key]) {
        e.preventDefault();
        this.panBy(...moves[e.key]);
      } else if (e.key === "+" || e.key === "=") this.zoomAt(1.2);
      else if (e.key === "-") this.zoomAt(1 / 1.2);
    });
    let last = null;
    new ResizeObserver(() => {
      const rect = vp.getBoundingClientRect();
      if (!rect.width) return;
      if (!this.fitted && this.state.room) {
        this.fitted = true;
        this.fit();
      } else if (last) {
        // keep what was in the middle in the middle (phone rotation, side panel changes)
        this.panBy((rect.width - last.width) / 2, (rect.height - last.height) / 2);
      }
      last = { width: rect.width, height: rect.height };
    }).observe(vp);
  }

  _tokenAt(target) {
    const el = target.closest?.(".token");
    return el && this.world.contains(el) ? el.dataset.id : null;
  }

  _down(e) {
    if (e.button !== undefined && e.button > 1) return;
    this.active.set(e.pointerId, { x: e.clientX, y: e.clientY });
    try {
      this.viewport.setPointerCapture(e.pointerId);
    } catch {
      // synthetic events may not be capturable
    }
    if (this.active.size === 2) {
      // a second finger: pinch zoom instead of whatever the first one started
      this._cancelDrag();
      const [a, b] = [...this.active.values()];
      this.gesture = { kind: "pinch", dist: Math.hypot(a.x - b.x, a.y - b.y) };
      return;
    }
    if (this.active.size > 2) return;
    const id = this._tokenAt(e.target);
    const token = id && this.shown(id);
    if (token && this.state.canChange(token) && token.z_index > MAP_LAYER && e.button === 0) {
      e.preventDefault();
      const start = this.toWorld(e.clientX, e.clientY);
      this.gesture = { kind: "token", id, start, origin: { x: token.x, y: token.y }, moved: false, sx: e.clientX, sy: e.clientY };
      this.dragging = { id, version: this.state.tokens.get(id).version, lastSent: 0, timer: null, pending: null };
      this.select(id);
      this.focusToken(id);
    } else {
      this.gesture = { kind: "pan", x: e.clientX, y: e.clientY, sx: e.clientX, sy: e.clientY, moved: false, id };
    }
  }

  _move(e) {
    if (this.active.has(e.pointerId)) this.active.set(e.pointerId, { x: e.clientX, y: e.clientY });
    const g = this.gesture;
    if (!g) {
      this._sharePointer(e);
      return;
    }
    if (g.kind === "pinch") {
      if (this.active.size < 2) return;
      const [a, b] = [...this.active.values()];
      const dist = Math.hypot(a.x - b.x, a.y - b.y);
      if (g.dist > 0) this.zoomAt(dist / g.dist, (a.x + b.x) / 2, (a.y + b.y) / 2);
      g.dist = dist;
      return;
    }
    if (!g.moved && Math.hypot(e.clientX - g.sx, e.clientY - g.sy) < 4) return;
    g.moved = true;
    if (g.kind === "pan") {
      this.panBy(e.clientX - g.x, e.clientY - g.y);
      g.x = e.clientX;
      g.y = e.clientY;
      return;
    }
    // dragging a token
    const at = this.toWorld(e.clientX, e.clientY);
    const x = Math.round(g.origin.x + at.x - g.start.x);
    const y = Math.round(g.origin.y + at.y - g.start.y);
    this.overrides.set(g.id, { ...(this.overrides.get(g.id) || {}), x, y, expect: null });
    this.renderToken(g.id);
    this.tokenEls.get(g.id)?.classList.add("is-dragging");
    this._preview(g.id, x, y);
    this._sharePointer(e);
  }

  /** Throttle preview frames to one per PREVIEW_INTERVAL_MS, always sending the latest spot. */
  _preview(id, x, y) {
    const d = this.dragging;
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
    const d = this.dragging;
    if (!d || !d.pending) return;
    d.lastSent = performance.now();
    this.socket.send("token.move", { token_id: d.id, x: d.pending.x, y: d.pending.y, preview: true });
    this.previewsSent = (this.previewsSent || 0) + 1;
    d.pending = null;
  }

  _up(e, cancelled = false) {
    this.active.delete(e.pointerId);
    const g = this.gesture;
    if (!g) return;
    if (g.kind === "pinch") {
      if (this.active.size === 0) this.gesture = null;
      return;
    }
    this.gesture = null;
    if (g.kind === "pan") {
      if (!g.moved && !cancelled) {
        if (g.id) {
          this.select(g.id);
          this.focusToken(g.id);
        } else {
          this.select(null);
        }
      }
      return;
    }
    const d = this.dragging;
    this.dragging = null;
    if (d) clearTimeout(d.timer);
    this.tokenEls.get(g.id)?.classList.remove("is-dragging");
    if (!g.moved || cancelled) {
      if (cancelled) this.overrides.delete(g.id);
      this.renderToken(g.id);
      return;
    }
    const override = this.overrides.get(g.id);
    if (override) this.change(g.id, { x: override.x, y: override.y }, { ifVersion: d?.version });
  }

  _cancelDrag() {
    if (this.gesture?.kind === "token") {
      const id = this.gesture.id;
      clearTimeout(this.dragging?.timer);
      this.dragging = null;
      this.overrides.delete(id);
      this.tokenEls.get(id)?.classList.remove("is-dragging");
      this.renderToken(id);
    }
    this.gesture = null;
  }

  _sharePointer(e) {
    if (!this.sharePointer || e.pointerType === "touch") return;
    const now = performance.now();
    if (now - this.lastPointerSent < POINTER_INTERVAL_MS) return;
    this.lastPointerSent = now;
    const at = this.toWorld(e.clientX, e.clientY);
    this.socket.send("pointer", { x: Math.round(at.x), y: Math.round(at.y) });
  }

  _onKey(e, id) {
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    const step = e.shiftKey ? BIG_STEP : STEP;
    const arrows = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
    let handled = true;
    if (arrows[e.key]) this.moveBy(id, ...arrows[e.key]);
    else if (e.key === "r") this.rotateBy(id, 15);
    else if (e.key === "R") this.rotateBy(id, -15);
    else if (e.key === "+" || e.key === "=") this.scaleBy(id, 1.1);
    else if (e.key === "-" || e.key === "_") this.scaleBy(id, 1 / 1.1);
    else if (e.key === "]" || e.key === "PageUp") this.layer(id, 1);
    else if (e.key === "[" || e.key === "PageDown") this.layer(id, -1);
    else if (e.key === "Delete" || e.key === "Backspace") this.remove(id);
    else if (e.key === "Enter" || e.key === " ") this.select(id);
    else if (e.key === "Escape") {
      this.select(null);
      this.viewport.focus();
    } else handled = false;
    if (handled) {
      e.preventDefault();
      e.stopPropagation();
    }
  }
}
