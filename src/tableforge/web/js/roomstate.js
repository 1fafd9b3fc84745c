// The room as this page knows it: filled from the join snapshot, then changed only by room
// events applied in version order (socket.js). Every applier is idempotent, so an event seen
// twice (an ack and a history replay) cannot duplicate anything.
//
// Hidden information: the server sends each socket only what its role may see (docs/protocol.md,
// "Hidden information"). This page holds one scene at a time (`scene`, with its map, grid and
// fog): a player's is the players' scene, a GM's the one they view. Scene and fog events are
// applied in scenestate.js.

import { applySceneEvent, sceneFromSnapshot, tokenFogged } from "./scenestate.js";

export class RoomState {
  constructor(roomId, me) {
    this.roomId = roomId;
    this.me = me;
    this.room = null;
    this.role = null;
    this.version = 0;
    this.players = new Map(); // user id -> {user, role, is_online}
    this.assets = new Map(); // asset id -> asset
    this.tokens = new Map(); // token id -> token
    this.messages = new Map(); // message id -> message
    this.sceneId = null; // the scene on this page's board
    this.scene = null; // that scene in full: {id, name, position, map, grid, fog}
    this.scenes = new Map(); // scene id -> summary (a GM sees every scene; a player only theirs)
    this.initiative = null; // the turn order {round, current, version, entries} (only what this page may see)
    this.system = null; // the room's game system {id, name, template}, loaded by system.js
    this.listeners = new Map(); // topic -> Set(fn)
  }

  on(topic, fn) {
    if (!this.listeners.has(topic)) this.listeners.set(topic, new Set());
    this.listeners.get(topic).add(fn);
  }

  emit(topic, detail) {
    for (const fn of this.listeners.get(topic) || []) fn(detail);
  }

  get isGm() {
    return this.role === "gm";
  }

  get isSpectator() {
    return this.role === "spectator";
  }

  get playersSceneId() {
    return this.room?.players_scene_id || null;
  }

  canChange(token) {
    return !!token && !this.isSpectator && (this.isGm || token.owner_id === this.me.id);
  }

  /** Hidden from players: on the GM layer, showing a hidden image, or (GM view) under fog. */
  isHidden(token) {
    return !!token && (!!token.hidden || !!this.assets.get(token.asset_id)?.hidden);
  }

  isFogged(token) {
    return tokenFogged(this, token);
  }

  /** A room member by name (any case), for whispers. */
  memberByName(name) {
    const wanted = name.toLowerCase();
    for (const p of this.players.values()) if (p.user.username.toLowerCase() === wanted) return p;
    return null;
  }

  username(userId) {
    if (!userId) return "someone";
    if (userId === this.me.id) return "you";
    return this.players.get(userId)?.user?.username || "someone";
  }

  sortedMessages() {
    return [...this.messages.values()].sort((a, b) => (a.version || 0) - (b.version || 0));
  }

  applySnapshot(snapshot, { role, version }) {
    const sceneBefore = this.sceneId;
    this.room = { ...(this.room || {}), ...snapshot.room };
    this.role = role || this.role;
    this.version = version;
    this.players = new Map((snapshot.players || []).map((p) => [p.user.id, p]));
    this.assets = new Map((snapshot.assets || []).map((a) => [a.id, a]));
    this.tokens = new Map((snapshot.tokens || []).map((t) => [t.id, t]));
    sceneFromSnapshot(this, snapshot);
    this.initiative = snapshot.initiative || null;
    // Chat is append-only: merge, so older lines we already show stay and none repeat.
    for (const message of snapshot.messages || []) this.messages.set(message.id, message);
    this.emit("room", this.room);
    this.emit("players");
    this.emit("assets");
    this.emit("scenes");
    this.emit("scene", { switched: sceneBefore !== this.sceneId });
    this.emit("tokens", { reset: true, switched: sceneBefore !== this.sceneId });
    this.emit("chat", { reset: true });
    this.emit("initiative", {});
  }

  /** The token whose turn it is (null before the first turn, or while a token this page cannot see acts). */
  get turnTokenId() {
    const ini = this.initiative;
    if (!ini || !ini.current) return null;
    return ini.entries.find((e) => e.id === ini.current)?.token_id || null;
  }

  /** Keep a token only if this page may show it (a player's own change can put it under fog). */
  _putToken(token) {
    if (token.scene_id && this.sceneId && token.scene_id !== this.sceneId) return false;
    if (!this.isGm && (token.hidden || tokenFogged(this, token))) {
      this.tokens.delete(token.id);
      return false;
    }
    this.tokens.set(token.id, token);
    return true;
  }

  applyEvent(event) {
    this.version = event.version;
    if (this.room) this.room.version = event.version;
    if (applySceneEvent(this, event)) return;
    switch (event.type) {
      case "player.joined": {
        const user = event.user;
        const known = this.players.get(user.id);
        // the event's role is the one this socket joined with (a spectator may since have become a player)
        this.players.set(user.id, { ...(known || {}), role: event.role || known?.role || "player",
          user: { ...(known?.user || {}), ...user }, is_online: true });
        this.emit("players");
        if (!known && !event.role) this.emit("newcomer", user.id); // the event does not say their role: room.js asks
        break;
      }
      case "player.left": {
        const known = this.players.get(event.user.id);
        if (known) this.players.set(event.user.id, { ...known, is_online: false });
        this.emit("players");
        break;
      }
      case "token.added":
        this._putToken(event.token);
        this.emit("tokens", { id: event.token.id, type: event.type, by: event.by });
        break;
      case "token.moved": {
        const token = this.tokens.get(event.token_id);
        if (token) {
          const version = event.token_version ?? token.version + 1;
          this._putToken({ ...token, x: event.x, y: event.y, version });
        }
        this.emit("tokens", { id: event.token_id, type: event.type, by: event.by });
        break;
      }
      case "token.updated":
        this._putToken(event.token);
        this.emit("tokens", { id: event.token.id, type: event.type, by: event.by });
        break;
      case "token.bar_changed":
      case "token.conditions_changed": {
        // Small changes: the token's version rises even when this copy carries no field (one we may not see).
        const token = this.tokens.get(event.token_id);
        if (token) {
          const next = { ...token, version: event.token_version };
          if (event.bar) next.bars = (token.bars || []).map((b) => (b.key === event.bar.key ? event.bar : b));
          if (event.conditions) next.conditions = event.conditions;
          this.tokens.set(token.id, next);
        }
        this.emit("tokens", { id: event.token_id, type: event.type, by: event.by });
        break;
      }
      case "token.removed":
        this.tokens.delete(event.token_id);
        this.emit("tokens", { id: event.token_id, type: event.type, by: event.by });
        break;
      case "initiative.changed":
        this.initiative = event.initiative;
        this.emit("initiative", { op: event.op, rolled: event.rolled, by: event.by });
        this.emit("tokens", { reset: true }); // the turn's highlight on the board
        break;
      case "chat.message":
        this.messages.set(event.message.id, event.message);
        this.emit("chat", { message: event.message });
        break;
      case "dice.rolled": {
        const roll = event.roll;
        const id = roll.message_id || `roll-${event.version}`;
        const message = {
          id, user_id: roll.user_id || event.by, username: roll.username, kind: "roll",
          text: `${roll.notation} = ${roll.total}`, roll, version: event.version, visibility: roll.visibility || "room",
          created_at: event.ts ? new Date(event.ts).toISOString() : new Date().toISOString(),
        };
        this.messages.set(id, message);
        this.emit("chat", { message });
        break;
      }
      case "asset.added":
        // A revealed image comes back with the tokens that show it (those this page may see).
        this.assets.set(event.asset.id, event.asset);
        for (const token of event.tokens || []) this._putToken(token);
        this.emit("assets");
        if (event.tokens?.length) this.emit("tokens", { reset: true });
        break;
      case "asset.updated":
        this.assets.set(event.asset.id, { ...(this.assets.get(event.asset.id) || {}), ...event.asset });
        this.emit("assets");
        break;
      case "asset.removed":
        this.assets.delete(event.asset_id);
        for (const token of [...this.tokens.values()]) {
          if (token.asset_id === event.asset_id) this.tokens.delete(token.id);
        }
        if (event.reason !== "hidden" && this.scene?.map?.asset_id === event.asset_id) {
          // a deleted map leaves its scene without one; a hidden one stays the scene's map (docs/protocol.md)
          this.scene = { ...this.scene, map: null };
          this.emit("scene", { switched: false });
        }
        this.emit("assets");
        this.emit("tokens", { reset: true });
        break;
      default:
        // an event type this page does not know yet: the version still counts
        break;
    }
  }
}
