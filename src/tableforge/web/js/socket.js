// The room's WebSocket: requests with acks, room events applied in version order (ordering.js),
// resync on a gap, and reconnection with backoff + jitter. One RoomSocket per open room.
//
// A gap that does not fill makes us rejoin with `since=version` (events or a snapshot come back).
// `room.skip {version}` is a version that carries nothing for this socket (a change it may not
// see): it is applied like any event, as an empty one, and never makes us resync.
//
// Scenes: a GM's socket views one scene (`sceneId`); `viewScene` switches it (its ack is that
// scene's snapshot) and a rejoin names it, so recovery brings that scene's events.

import { VersionOrder } from "./ordering.js";

const REQUEST_TIMEOUT_MS = 15000;
const PING_EVERY_MS = 20000;
const PONG_WAIT_MS = 10000;
const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 15000;
// Close 1012 (service restart): the instance is draining or rebalancing and the balancer will send us
// elsewhere. The server already spreads these closes over a window, so a short jitter is enough.
const RESTART_JITTER_MS = 1000;
// With these reasons the server answered every message it read before closing (PROTOCOL.md): an
// unanswered request was not applied, and is sent again once we have rejoined.
const POLITE_CLOSE_REASONS = ["server draining", "rebalancing"];

export class RoomSocket {
  /**
   * handlers: onSnapshot(snapshot, {role, version}), onEvent(event), onEphemeral(event),
   * onStatus(status, detail), onNotice(event) (room.closed, system.broadcast), onError(err),
   * onAuthFailed(), onJoinFailed(err)
   *
   * getTicket: async () => {ticket}: a single-use ticket for each connection attempt (the page's
   * way: its long-lived token never goes into a URL, where proxies and access logs keep it).
   * Without it, `token` is sent as `?token=` (kept for other clients).
   */
  constructor({ roomId, token, getTicket, handlers, url }) {
    this.roomId = roomId;
    this.token = token;
    this.getTicket = getTicket || null;
    this.connectSeq = 0; // the latest attempt: an older one whose ticket arrives late gives up
    this.handlers = handlers;
    this.url = url || RoomSocket.defaultUrl();
    this.ws = null;
    this.order = new VersionOrder({
      apply: (event) => this._apply(event),
      ephemeral: (event) => this.handlers.onEphemeral(event),
      onGap: () => this.resync(),
    });
    this.pending = new Map(); // request id -> {resolve, reject, timer, asEvent, onAck, type, message}
    this.resend = new Map(); // requests unanswered at a polite 1012 close: sent again after the rejoin
    this.nextId = 1;
    this.joined = false;
    this.joining = false;
    this.attempt = 0;
    this.stopped = false;
    this.reconnectTimer = null;
    this.pingTimer = null;
    this.pongTimer = null;
    this.role = null;
    this.sceneId = null; // the scene this socket views (a GM's choice; players follow theirs)
    this.stats = { resyncs: 0, snapshots: 0, reconnects: 0, skips: 0 };
    this._onOnline = () => this._reconnectNow();
    window.addEventListener("online", this._onOnline);
  }

  /** The last room version applied (null until the first snapshot). */
  get version() {
    return this.order.version;
  }

  static defaultUrl() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${location.host}/ws`;
  }

  // -- lifecycle ------------------------------------------------------------------------------
  connect() {
    if (this.stopped) return;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    this._status(this.attempt ? "reconnecting" : "connecting");
    const seq = ++this.connectSeq;
    this._socketUrl().then(
      (url) => {
        if (!this.stopped && seq === this.connectSeq && !this.ws) this._open(url);
      },
      (err) => {
        if (this.stopped || seq !== this.connectSeq) return;
        if (err && err.status === 401) {
          this.stopped = true;
          this._status("offline", { code: 4401, reason: "unauthorized" });
          this.handlers.onAuthFailed({ code: "invalid_token", message: err.message });
          return;
        }
        this._scheduleReconnect(1006);
      },
    );
  }

  async _socketUrl() {
    // `room`: a balancer may hash it to keep a room's players on one instance (a routing hint
    // only; joining still checks membership).
    const room = `room=${encodeURIComponent(this.roomId)}`;
    if (this.getTicket) {
      const { ticket } = await this.getTicket();
      return `${this.url}?ticket=${encodeURIComponent(ticket)}&${room}`;
    }
    return `${this.url}?token=${encodeURIComponent(this.token)}&${room}`;
  }

  _open(url) {
    let ws;
    try {
      ws = new WebSocket(url);
    } catch (err) {
      this._scheduleReconnect(1006);
      return;
    }
    this.ws = ws;
    ws.addEventListener("open", () => {
      if (this.ws !== ws) return;
      this._join();
      this._startPing();
    });
    ws.addEventListener("message", (event) => {
      if (this.ws !== ws) return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      if (frame && frame.type === "batch" && Array.isArray(frame.frames)) {
        // several frames in one message (we announce `batch` in join): each as if it came alone
        for (const one of frame.frames) {
          if (this.ws !== ws) return;
          this._onFrame(one);
        }
        return;
      }
      this._onFrame(frame);
    });
    ws.addEventListener("close", (event) => {
      if (this.ws !== ws) return;
      this._onClose(event.code, event.reason);
    });
    ws.addEventListener("error", () => {
      // a close event always follows; nothing to do here
    });
  }

  /** Leave the room and stop for good (going back to the lobby, logging out). */
  close() {
    this.stopped = true;
    window.removeEventListener("online", this._onOnline);
    clearTimeout(this.reconnectTimer);
    this.order.stop();
    this._stopPing();
    const ws = this.ws;
    this.ws = null;
    this._failPending("disconnected", "left the room");
    this._failResend("disconnected", "left the room");
    if (ws) {
      try {
        if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "leave", room_id: this.roomId }));
        ws.close(1000, "bye");
      } catch {
        // already gone
      }
    }
  }

  /** Drop the connection as if the network failed (used by tests and the "reconnect" button). */
  dropForTest() {
    if (this.ws) this.ws.close(4000, "client test drop");
  }

  get connected() {
    return !!this.ws && this.ws.readyState === WebSocket.OPEN && this.joined;
  }

  // -- sending ----------------------------------------------------------------------------------
  /**
   * Send a message that expects an ack. `asEvent(ack)` turns the ack of our own change into the
   * room event the others receive, so it is applied in version order like theirs; `onAck(ack)`
   * handles an ack that is a snapshot (scene.view); `onFail(err)` hears of a refusal or timeout.
   */
  request(type, payload = {}, { asEvent, onAck, onFail } = {}) {
    return new Promise((resolve, reject) => {
      const fail = (err) => {
        onFail?.(err);
        reject(err);
      };
      if (!this.connected) {
        const err = new Error("not connected");
        err.code = "disconnected";
        err.message = "you are offline; reconnecting";
        reject(err);
        return;
      }
      const id = this.nextId++;
      const timer = setTimeout(() => {
        this.pending.delete(id);
        this.resend.delete(id);
        const err = new Error("timeout");
        err.code = "timeout";
        fail(err);
      }, REQUEST_TIMEOUT_MS);
      const message = { type, id, room_id: this.roomId, ...payload };
      this.pending.set(id, { resolve, reject: fail, timer, asEvent, onAck, type, message });
      this._sendRaw(message);
    });
  }

  /** Fire and forget (preview moves, pointers): sent only while joined, may be dropped. */
  send(type, payload = {}) {
    if (!this.connected) return false;
    return this._sendRaw({ type, room_id: this.roomId, ...payload });
  }

  _sendRaw(message) {
    try {
      this.ws.send(JSON.stringify(message));
      return true;
    } catch {
      return false;
    }
  }

  // -- joining and resync -----------------------------------------------------------------------
  _join() {
    // batch: the server may send frames that queued up as one message (less work on both sides)
    const message = { type: "join", room_id: this.roomId, id: `join-${this.nextId++}`, batch: true };
    if (this.version !== null) message.since = this.version;
    if (this.sceneId && this.role === "gm") message.scene_id = this.sceneId;
    this.joining = true;
    this.joinId = message.id;
    this._sendRaw(message);
  }

  /** Ask for what we missed (a gap that did not fill by itself). */
  resync() {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN || this.joining) return;
    this.stats.resyncs += 1;
    this._join();
  }

  /**
   * GM: view another scene. The ack is that scene's snapshot (applied as a new board); its
   * events follow it, and the other scenes' become room.skip for this socket.
   */
  viewScene(sceneId) {
    return this.request("scene.view", { scene_id: sceneId }, {
      onAck: (frame) => this._applySnapshot(frame),
      // Refused before anything changed (an unknown scene, not a GM): we still view the old one.
      // Anything else (a timeout, a server error) may have left us on either: join from scratch.
      onFail: (err) => {
        if (!["scene_not_found", "not_gm", "invalid_message", "rate_limited", "disconnected"].includes(err.code)) {
          this._rejoinFresh();
        }
      },
    });
  }

  _rejoinFresh() {
    this.order.forget();
    if (this.ws && this.ws.readyState === WebSocket.OPEN && !this.joining) this._join();
  }

  _applySnapshot(frame) {
    this.stats.snapshots += 1;
    this.role = frame.role || this.role;
    this.sceneId = frame.scene_id || frame.snapshot.scene_id || null;
    this.order.reset(frame.version ?? frame.snapshot.room?.version ?? 0);
    this.handlers.onSnapshot(frame.snapshot, { role: this.role, version: this.version, sceneId: this.sceneId });
  }

  _onJoinAck(frame) {
    this.joining = false;
    this.role = frame.role || this.role;
    if (frame.snapshot) {
      this._applySnapshot(frame);
    } else if (Array.isArray(frame.events)) {
      for (const event of frame.events) this._ingest(event, { fromHistory: true });
      if (typeof frame.version === "number" && (this.version === null || this.version < frame.version)) {
        // The history did not bring us up to date: ask for a snapshot instead.
        this.order.version = null;
        this._join();
        return;
      }
    }
    const wasJoined = this.joined;
    this.joined = true;
    this.attempt = 0;
    this._drain();
    this._resendUnanswered();
    this._status("online", { rejoined: wasJoined || this.stats.reconnects > 0 });
  }

  _ingest(event, options) {
    this.order.ingest(event, options);
  }

  _drain() {
    this.order.drain();
  }

  _apply(event) {
    // room.skip: a change this socket may not see; nothing to apply, nothing lost (the room
    // state only takes its version)
    if (event.type === "room.skip") this.stats.skips += 1;
    if (event.type === "scene.activated" && event.scene && this.role !== "gm") this.sceneId = event.scene_id;
    try {
      this.handlers.onEvent(event);
    } catch (err) {
      console.error("applying event failed", event, err);
    }
  }

  // -- frames -------------------------------------------------------------------------------------
  _onFrame(frame) {
    switch (frame.type) {
      case "ack":
        if (frame.id !== undefined && frame.id === this.joinId) {
          this._onJoinAck(frame);
          return;
        }
        this._onAck(frame);
        return;
      case "error":
        this._onErrorFrame(frame);
        return;
      case "pong":
        clearTimeout(this.pongTimer);
        this.pongTimer = null;
        return;
      case "room.closed":
      case "system.broadcast":
        this.handlers.onNotice(frame);
        return;
      case "room.resync":
        // The server skipped events we are missing (an outage, or we were too far behind): rejoin
        // with `since`, which answers with the missed events or a snapshot in one frame.
        if (frame.room_id === this.roomId && (this.version === null || this.version < frame.version)) this.resync();
        return;
      default:
        if (frame.room_id && frame.room_id !== this.roomId) return;
        this._ingest(frame);
    }
  }

  _onAck(frame) {
    const entry = this.pending.get(frame.id);
    if (!entry) return;
    this.pending.delete(frame.id);
    clearTimeout(entry.timer);
    if (entry.onAck) {
      entry.onAck(frame);
      this._drain();
    } else if (entry.asEvent && typeof frame.version === "number") {
      const event = entry.asEvent(frame);
      if (event) this._ingest({ room_id: this.roomId, version: frame.version, ...event });
    }
    entry.resolve(frame);
  }

  _onErrorFrame(frame) {
    const err = new Error(frame.message || frame.code);
    err.code = frame.code;
    err.details = frame.details;
    if (frame.id !== undefined && frame.id !== null && frame.id === this.joinId) {
      this.joining = false;
      if (["invalid_token", "unauthorized"].includes(frame.code)) {
        this.handlers.onAuthFailed(err);
        return;
      }
      if (frame.code === "scene_not_found" && this.sceneId) {
        // the scene this GM viewed was removed while we were away: back to the players' scene
        this.sceneId = null;
        this._rejoinFresh();
        return;
      }
      this.stopped = true;
      this._failResend(err.code, err.message);
      this.handlers.onJoinFailed(err);
      return;
    }
    const entry = frame.id !== undefined && frame.id !== null ? this.pending.get(frame.id) : null;
    if (entry) {
      this.pending.delete(frame.id);
      clearTimeout(entry.timer);
      entry.reject(err);
      return;
    }
    if (["invalid_token", "unauthorized"].includes(frame.code)) return; // the 4401 close follows
    this.handlers.onError(err);
  }

  // -- dropped connections --------------------------------------------------------------------------
  _onClose(code, reason) {
    this.ws = null;
    this.joined = false;
    this.joining = false;
    this._stopPing();
    if (code === 1012 && POLITE_CLOSE_REASONS.includes(reason) && !this.stopped) {
      for (const [id, entry] of this.pending) this.resend.set(id, entry);
      this.pending.clear();
    }
    this._failPending("disconnected", "the connection dropped");
    if (this.stopped) {
      this._status("offline", { code, reason });
      return;
    }
    if (code === 4401) {
      this.stopped = true;
      this._failResend("disconnected", "signed out");
      this._status("offline", { code, reason });
      this.handlers.onAuthFailed({ code: "invalid_token", message: reason });
      return;
    }
    this._scheduleReconnect(code, reason);
  }

  /** Stop using a socket at once (a dead link may take long to report its close). */
  _abandon(ws, code, reason) {
    try {
      ws.close(code, reason);
    } catch {
      // already closing
    }
    if (this.ws === ws) this._onClose(code, reason);
  }

  _scheduleReconnect(code, reason) {
    this.stats.reconnects += 1;
    let delay;
    if (code === 1012 && this.attempt === 0) {
      // sent elsewhere on purpose: come back promptly, jittered (not a failure: no backoff step)
      delay = 100 + Math.random() * RESTART_JITTER_MS;
    } else {
      const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** this.attempt);
      // full jitter, with a floor so a restarting server is not hammered
      delay = 250 + Math.random() * ceiling;
      if (code === 1008) delay += 2000; // we were flooding: wait longer
      this.attempt = Math.min(this.attempt + 1, 10);
    }
    this._status("reconnecting", { code, reason, delay });
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }

  _reconnectNow() {
    if (this.stopped || this.ws) return;
    clearTimeout(this.reconnectTimer);
    this.connect();
  }

  /** After a rejoin: the requests a polite 1012 left unanswered (they were not applied). */
  _resendUnanswered() {
    if (!this.resend.size) return;
    const entries = [...this.resend];
    this.resend.clear();
    for (const [id, entry] of entries) {
      this.pending.set(id, entry);
      this._sendRaw(entry.message);
    }
  }

  _failResend(code, message) {
    for (const entry of this.resend.values()) {
      clearTimeout(entry.timer);
      const err = new Error(message);
      err.code = code;
      entry.reject(err);
    }
    this.resend.clear();
  }

  _failPending(code, message) {
    for (const entry of this.pending.values()) {
      clearTimeout(entry.timer);
      const err = new Error(message);
      err.code = code;
      entry.reject(err);
    }
    this.pending.clear();
  }

  _startPing() {
    this._stopPing();
    this.pingTimer = setInterval(() => {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return;
      this._sendRaw({ type: "ping", id: `ping-${this.nextId++}` });
      clearTimeout(this.pongTimer);
      const ws = this.ws;
      this.pongTimer = setTimeout(() => {
        if (this.ws === ws) this._abandon(ws, 4000, "no answer to ping"); // a dead link: reconnect
      }, PONG_WAIT_MS);
    }, PING_EVERY_MS);
  }

  _stopPing() {
    clearInterval(this.pingTimer);
    clearTimeout(this.pongTimer);
    this.pingTimer = null;
    this.pongTimer = null;
  }

  _status(status, detail = {}) {
    this.handlers.onStatus(status, detail);
  }
}
