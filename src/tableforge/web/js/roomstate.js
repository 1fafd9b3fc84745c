// The room as this page knows it: filled from the join snapshot, then changed only by room
// events applied in version order (socket.js). Every applier is idempotent, so an event seen
// twice (an ack and a history replay) cannot duplicate anything.

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

  canChange(token) {
    return !!token && (this.isGm || token.owner_id === this.me.id);
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
    this.room = { ...(this.room || {}), ...snapshot.room };
    this.role = role || this.role;
    this.version = version;
    this.players = new Map((snapshot.players || []).map((p) => [p.user.id, p]));
    this.assets = new Map((snapshot.assets || []).map((a) => [a.id, a]));
    this.tokens = new Map((snapshot.tokens || []).map((t) => [t.id, t]));
    // Chat is append-only: merge, so older lines we already show stay and none repeat.
    for (const message of snapshot.messages || []) this.messages.set(message.id, message);
    this.emit("room", this.room);
    this.emit("players");
    this.emit("assets");
    this.emit("tokens", { reset: true });
    this.emit("chat", { reset: true });
  }

  applyEvent(event) {
    this.version = event.version;
    if (this.room) this.room.version = event.version;
    switch (event.type) {
      case "player.joined": {
        const user = event.user;
        const known = this.players.get(user.id);
        this.players.set(user.id, { ...(known || { role: "player" }), user: { ...(known?.user || {}), ...user },
          is_online: true });
        this.emit("players");
        break;
      }
      case "player.left": {
        const known = this.players.get(event.user.id);
        if (known) this.players.set(event.user.id, { ...known, is_online: false });
        this.emit("players");
        break;
      }
      case "token.added":
        this.tokens.set(event.token.id, event.token);
        this.emit("tokens", { id: event.token.id, type: event.type, by: event.by });
        break;
      case "token.moved": {
        const token = this.tokens.get(event.token_id);
        if (token) {
          const version = event.token_version ?? token.version + 1;
          this.tokens.set(token.id, { ...token, x: event.x, y: event.y, version });
        }
        this.emit("tokens", { id: event.token_id, type: event.type, by: event.by });
        break;
      }
      case "token.updated":
        this.tokens.set(event.token.id, event.token);
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
      case "chat.message":
        this.messages.set(event.message.id, event.message);
        this.emit("chat", { message: event.message });
        break;
      case "dice.rolled": {
        const roll = event.roll;
        const id = roll.message_id || `roll-${event.version}`;
        const message = {
          id, user_id: roll.user_id || event.by, username: roll.username, kind: "roll",
          text: `${roll.notation} = ${roll.total}`, roll, version: event.version,
          created_at: event.ts ? new Date(event.ts).toISOString() : new Date().toISOString(),
        };
        this.messages.set(id, message);
        this.emit("chat", { message });
        break;
      }
      case "asset.added":
        this.assets.set(event.asset.id, event.asset);
        this.emit("assets");
        break;
      case "asset.removed":
        this.assets.delete(event.asset_id);
        for (const token of [...this.tokens.values()]) {
          if (token.asset_id === event.asset_id) this.tokens.delete(token.id);
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
