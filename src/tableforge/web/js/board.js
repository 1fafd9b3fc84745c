// The board: a DOM world layer under a pan/zoom transform. Tokens are focusable elements
// (tab to one, arrow keys move it). Dragging sends throttled preview moves and one committed
// move on drop; changes to one token are queued so each carries the right `if_version`.
//
// Layers of the world, bottom up: the scene's map (its background image, top-left at 0,0), map
// tokens (z_index <= MAP_LAYER), the fog (fog.js), the other tokens, others' pointers. The GM
// sees hidden tokens (GM layer, hidden image) faded, and may hide them (`showHidden`). Input is
// in board-input.js; the grid is drawn from the scene's settings (grid.js).
//
// Tokens (not maps) are drawn `size` cells wide on the scene's grid, and snap to cells or hex
// centres when dropped or moved with the keys (grid.js `snap`, the server's twin); Alt drops freely.
// Their name, bars and conditions are drawn by tokenart.js; the ruler and pings by marks.js.

import { BoardInput } from "./board-input.js";
import { Others } from "./board-others.js";
import { FogLayer } from "./fog.js";
import { snap, withDefaults } from "./grid.js";
import { gridBackground } from "./gridlines.js";
import { Marks } from "./marks.js";
import { decorateToken, describeCharacter } from "./tokenart.js";
import { clamp, h, toast, describeError } from "./util.js";

const MAP_LAYER = -1000; // tokens at or below this z_index are maps: pointer drags pan over them
const TOKEN_SIZE = 70;
// CSS z-index: map tokens end at 999_000, the fog sits at 999_001, other tokens start at 999_002.
const MAP_Z_BASE = 1_000_000;
const TOKEN_Z_BASE = 1_000_002;
const FOG_Z = 999_001;
const MIN_ZOOM = 0.1;
const MAX_ZOOM = 5;
// The sizes + and - step through on a token, in cells (the token panel offers the same).
export const CELL_SIZES = [0.25, 0.5, 1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20];

export class Board {
  constructor({ viewport, state, socket, onSelect }) {
    this.viewport = viewport;
    this.state = state;
    this.socket = socket;
    this.onSelect = onSelect || (() => {});
    this.world = h("div", { class: "board-world" });
    this.mapEl = h("img", { class: "scene-map", alt: "", draggable: "false", hidden: true });
    this.fog = new FogLayer();
    this.fog.el.style.zIndex = String(FOG_Z);
    this.pointerLayer = h("div", { class: "board-pointers", "aria-hidden": "true" });
    this.world.append(this.mapEl, this.fog.el, this.pointerLayer);
    this.viewport.replaceChildren(this.world);
    this.gridPreview = null; // grid settings shown instead of the scene's while the GM aligns the grid
    this.marks = new Marks(this); // rulers and pings
    this.view = { x: 0, y: 0, zoom: 1 };
    this.fitted = false;
    this.tokenEls = new Map();
    this.overrides = new Map(); // token id -> {x?, y?, rotation?, scale?, z_index?, expect?}
    this.queues = new Map(); // token id -> {inflight, patch, nextVersion, ifVersion}
    this.others = new Others(this); // others' drags and pointers (board-others.js)
    this.dragging = null; // the token this page drags (board-input.js)
    this.selectedId = null;
    this.sharePointer = true;
    this.showHidden = true; // GM: draw hidden tokens (faded); off shows the board nearly as players see it
    this.newHidden = false; // GM: tokens placed from now on go on the GM layer
    this.tool = null; // a drawing tool that takes the pointer (fogtools.js)
    this.input = new BoardInput(this, MAP_LAYER);
    this.applyView();
    state.on("tokens", (detail) => this._onTokens(detail));
    state.on("assets", () => this.renderAll());
    state.on("scene", () => this.renderScene());
    state.on("fog", () => this.renderScene());
    state.on("room", () => this.renderScene());
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

  /** The grid on the board: the scene's settings with defaults (or the GM's alignment preview). */
  grid() {
    return withDefaults(this.gridPreview || this.state.scene?.grid);
  }

  /** Put a tool on the board (the ruler, a fog tool, grid alignment) or none; the one before is told. */
  setTool(tool) {
    const before = this.tool;
    if (before === tool) return;
    this.tool = tool;
    before?.release?.();
    this.viewport.dispatchEvent(new CustomEvent("toolchange"));
  }

  applyView() {
    const { x, y, zoom } = this.view;
    this.world.style.transform = `translate(${x}px, ${y}px) scale(${zoom})`;
    const grid = gridBackground(this.grid(), zoom, x, y);
    this.viewport.style.backgroundImage = grid.image;
    this.viewport.style.backgroundSize = grid.size;
    this.viewport.style.backgroundPosition = grid.position;
    this.viewport.dataset.zoom = zoom.toFixed(2);
    const rect = this.viewport.getBoundingClientRect();
    if (rect.width) {
      this.fog.fitTo({ x: -x / zoom, y: -y / zoom, width: rect.width / zoom, height: rect.height / zoom }, zoom, rect);
    }
    this.tool?.onView?.();
    this.marks?.onView();
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

  /** Centre the view on the map and tokens (or on the origin when the board is empty). */
  fit() {
    const rect = this.viewport.getBoundingClientRect();
    const boxes = [...this.state.tokens.values()].filter((t) => this.visible(t)).map((t) => {
      const { w, hgt } = this._size(t);
      return [t.x - w / 2, t.y - hgt / 2, t.x + w / 2, t.y + hgt / 2];
    });
    const map = this.state.scene?.map;
    if (map) boxes.push([0, 0, map.width, map.height]);
    if (!boxes.length || !rect.width) {
      this.view = { x: rect.width / 2, y: rect.height / 2, zoom: 1 };
      this.applyView();
      return;
    }
    let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
    for (const [x0, y0, x1, y1] of boxes) {
      minX = Math.min(minX, x0);
      maxX = Math.max(maxX, x1);
      minY = Math.min(minY, y0);
      maxY = Math.max(maxY, y1);
    }
    const pad = 40;
    const zoom = clamp(Math.min((rect.width - pad * 2) / Math.max(1, maxX - minX),
      (rect.height - pad * 2) / Math.max(1, maxY - minY)), MIN_ZOOM, 1.5);
    this.view = { zoom, x: rect.width / 2 - ((minX + maxX) / 2) * zoom, y: rect.height / 2 - ((minY + maxY) / 2) * zoom };
    this.applyView();
  }

  // -- rendering --------------------------------------------------------------------------------------
  _size(token) {
    if (token.z_index > MAP_LAYER) {
      const side = (token.size || 1) * this.grid().size;
      return { w: side, hgt: side };
    }
    const asset = this.state.assets.get(token.asset_id);
    const scale = token.scale || 1;
    return { w: (asset?.width || TOKEN_SIZE) * scale, hgt: (asset?.height || TOKEN_SIZE) * scale };
  }

  /** Whether the board draws this token (a GM may choose not to see the hidden ones). */
  visible(token) {
    return this.showHidden || !this.state.isHidden(token);
  }

  /** What the page shows for a token: the stored state, our pending change, or someone's drag. */
  shown(id) {
    const token = this.state.tokens.get(id);
    if (!token || !this.visible(token)) return null;
    const override = this.overrides.get(id);
    if (override) {
      const queue = this.queues.get(id);
      const busy = this.dragging?.id === id || (queue && (queue.inflight || queue.patch));
      if (busy || (override.expect && token.version < override.expect)) {
        return { ...token, ...override, _local: true };
      }
      this.overrides.delete(id);
    }
    const remote = this.others.drag(id);
    if (remote) return { ...token, x: remote.x, y: remote.y, _remoteBy: remote.by };
    return token;
  }

  _onTokens(detail = {}) {
    if (detail.switched) {
      // another scene on the board: nothing of the old one carries over
      this.others.reset();
      if (this.tool === this.ruler) this.ruler.cancel(); // a measurement of the old scene
      this.overrides.clear();
      this.queues.clear();
      this.fitted = false;
    }
    if (detail.reset || !detail.id) {
      this.renderAll();
      if (!this.fitted && this.viewport.getBoundingClientRect().width) {
        this.fitted = true;
        this.fit();
      }
      return;
    }
    const remote = this.others.drag(detail.id);
    if (remote && (detail.type !== "token.moved" || remote.by === detail.by)) this.others.clearDrag(detail.id);
    if (detail.type === "token.removed") {
      this.overrides.delete(detail.id);
      this.queues.delete(detail.id);
    }
    this.renderAll();
  }

  /** The scene's map, grid and fog. */
  renderScene() {
    const scene = this.state.scene;
    const map = scene?.map;
    if (map) {
      if (this.mapEl.getAttribute("src") !== map.url) this.mapEl.setAttribute("src", map.url);
      this.mapEl.style.width = `${map.width}px`;
      this.mapEl.style.height = `${map.height}px`;
      this.mapEl.hidden = false;
    } else {
      this.mapEl.removeAttribute("src");
      this.mapEl.hidden = true;
    }
    this.fog.render(scene?.fog, { gm: this.state.isGm });
    this.viewport.dataset.sceneId = this.state.sceneId || "";
    this.applyView();
    this.renderAll(); // the GM's "under fog" marks, and token sizes in cells
    this.marks.onScene();
  }

  renderAll() {
    const seen = new Set();
    const order = [...this.state.tokens.values()]
      .filter((t) => this.visible(t))
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
    this.viewport.classList.toggle("is-empty", seen.size === 0 && !this.state.scene?.map);
    if (this.selectedId) this.onSelect(this.selectedId);
  }

  renderToken(id) {
    const token = this.shown(id);
    if (!token) return;
    let el = this.tokenEls.get(id);
    const asset = this.state.assets.get(token.asset_id);
    if (!el) {
      el = h("div", { class: "token", tabindex: "0", role: "button", dataset: { id } });
      el.append(h("img", { alt: "", draggable: "false" }), h("span", { class: "token-flag", "aria-hidden": "true" }),
        h("span", { class: "token-badge", "aria-hidden": "true" }));
      el.addEventListener("keydown", (event) => this.input.tokenKey(event, id));
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
    const isMap = token.z_index <= MAP_LAYER;
    el.style.zIndex = String(token.z_index + (isMap ? MAP_Z_BASE : TOKEN_Z_BASE));
    const mine = this.state.canChange(token);
    const gm = this.state.isGm;
    const hidden = gm && this.state.isHidden(token);
    const underFog = gm && !hidden && this.state.isFogged(token);
    el.classList.toggle("is-hidden", hidden);
    el.classList.toggle("is-fogged", underFog);
    el.querySelector(".token-flag").textContent = hidden ? "hidden" : underFog ? "under fog" : "";
    el.classList.toggle("is-map", isMap);
    el.classList.toggle("is-mine", mine);
    el.classList.toggle("is-selected", this.selectedId === id);
    el.classList.toggle("is-remote-drag", !!token._remoteBy);
    el.classList.toggle("is-local", !!token._local);
    const badge = el.querySelector(".token-badge");
    badge.textContent = token._remoteBy ? `${this.state.username(token._remoteBy)} is moving this` : "";
    const name = token.name || asset?.name || "token";
    const owner = this.state.username(token.owner_id);
    const turn = this.state.turnTokenId === id;
    el.setAttribute("aria-label", `${isMap ? "Map" : "Token"} ${name}${describeCharacter(token)}${turn ? ", its turn" : ""}, `
      + `placed by ${owner}, at ${Math.round(token.x)}, ${Math.round(token.y)}`
      + (hidden ? ", hidden from players" : "") + (underFog ? ", under fog: players cannot see it" : "")
      + (token._remoteBy ? `, being moved by ${this.state.username(token._remoteBy)}` : "")
      + (mine ? `. Arrow keys move it a cell (Alt: freely); R rotates; + and - resize; P pings; Delete removes${gm ? "; H hides or reveals it" : ""}.` : ". P pings it."));
    el.title = `${token.name || name} (${owner})${hidden ? " — hidden from players" : underFog ? " — under fog" : ""}`;
    decorateToken(el, token, { turn, rotation: token.rotation || 0, w, hgt });
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

  onEphemeral(event) {
    if (event.type === "ruler" || event.type === "board.ping") this.marks.onFrame(event);
    else this.others.onEphemeral(event);
  }

  /** Where a token dropped with its centre at (x, y) lands: on the grid, unless `free` (Alt held). */
  snapFor(token, x, y, { free = false } = {}) {
    const g = this.grid();
    if (free || token.z_index <= MAP_LAYER || g.type === "none") return { x: Math.round(x), y: Math.round(y) };
    const [sx, sy] = snap(g, x, y, token.size || 1);
    return { x: Math.round(sx), y: Math.round(sy) };
  }

  // -- changing tokens ----------------------------------------------------------------------------
  /** Queue a change; at most one request per token in flight, later changes merge. */
  change(id, patch, { ifVersion } = {}) {
    const token = this.state.tokens.get(id);
    if (!token) return;
    if (!this.state.canChange(token)) {
      toast(describeError({ code: this.state.isSpectator ? "spectator_read_only" : "not_token_owner" }));
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

  /** Keyboard moves: one cell on a grid (snapped), `dx`/`dy` pixels when `free` or without a grid. */
  moveBy(id, dx, dy, { free = false } = {}) {
    const token = this.shown(id);
    if (!token) return;
    const g = this.grid();
    if (free || token.z_index <= MAP_LAYER || g.type === "none") {
      this.change(id, { x: Math.round(token.x + dx), y: Math.round(token.y + dy) });
      return;
    }
    const to = this.snapFor(token, token.x + Math.sign(dx) * g.size, token.y + Math.sign(dy) * g.size);
    if (to.x !== token.x || to.y !== token.y) this.change(id, to);
  }

  rotateBy(id, degrees) {
    const token = this.shown(id);
    if (token) this.change(id, { rotation: (((token.rotation || 0) + degrees) % 360 + 360) % 360 });
  }

  /** + and -: a map grows by `factor`; a token steps to the next size in cells (and snaps again). */
  scaleBy(id, factor) {
    const token = this.shown(id);
    if (!token) return;
    if (token.z_index <= MAP_LAYER) {
      this.change(id, { scale: clamp(Math.round((token.scale || 1) * factor * 1000) / 1000, 0.01, 100) });
      return;
    }
    const now = token.size || 1;
    const size = factor > 1 ? CELL_SIZES.find((c) => c > now) : [...CELL_SIZES].reverse().find((c) => c < now);
    if (size) this.resize(id, size);
  }

  resize(id, size) {
    const token = this.shown(id);
    if (!token) return;
    this.change(id, { size, ...this.snapFor({ ...token, size }, token.x, token.y) });
  }

  layer(id, delta) {
    const token = this.shown(id);
    if (!token) return;
    const isMap = token.z_index <= MAP_LAYER;
    let z = token.z_index + delta;
    if (!isMap && z <= MAP_LAYER) z = MAP_LAYER + 1; // a token never sinks under the maps by accident
    this.change(id, { z_index: z });
  }

  /** GM: put a token on the GM layer (players stop seeing it) or take it off. */
  toggleHidden(id) {
    const token = this.state.tokens.get(id);
    if (!token || !this.state.isGm) return;
    this.change(id, { hidden: !token.hidden });
  }

  remove(id) {
    const token = this.state.tokens.get(id);
    if (!token) return;
    if (!this.state.canChange(token)) {
      toast(describeError({ code: this.state.isSpectator ? "spectator_read_only" : "not_token_owner" }));
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
  place(asset, { asMap = false, at, hidden } = {}) {
    const longest = Math.max(asset.width || TOKEN_SIZE, asset.height || TOKEN_SIZE);
    let scale = 1;
    if (asMap && longest > 4000) scale = 4000 / longest;
    const centre = at || this.viewCenter();
    const size = Number(this.state.system?.template?.token_defaults?.size) || 1;
    const where = asMap ? centre : this.snapFor({ z_index: 0, size }, centre.x, centre.y);
    let z = 0;
    const zs = [...this.state.tokens.values()].map((t) => t.z_index);
    if (asMap) z = Math.min(MAP_LAYER, ...zs.filter((v) => v <= MAP_LAYER).map((v) => v - 1));
    else z = Math.max(0, ...zs.filter((v) => v > MAP_LAYER).map((v) => v + 1));
    z = clamp(z, -1_000_000, 1_000_000);
    const message = {
      asset_id: asset.id, x: Math.round(where.x), y: Math.round(where.y), scale: Math.round(scale * 1000) / 1000, z_index: z,
    };
    if (this.state.isGm && (hidden ?? this.newHidden)) message.hidden = true;
    return this.socket.request("token.add", message, { asEvent: (ack) => ack.token && { type: "token.added", token: ack.token, by: this.state.me.id } })
      .then((ack) => {
        if (ack.token) {
          this.select(ack.token.id);
          this.focusToken(ack.token.id);
        }
        return ack.token;
      });
  }
}
