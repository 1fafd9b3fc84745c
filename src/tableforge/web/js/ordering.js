// Room events in version order (socket.js). `version` is the last room version applied. A stored
// event (or the ack of our own change, turned into the same event) with version v is applied only
// when v == version + 1; later ones wait in `held`; older ones are duplicates and are dropped. A
// gap that does not fill within GAP_WAIT_MS is reported (`onGap`: the socket rejoins with
// `since`). `room.skip` is an event like any other here: it fills its version.

const GAP_WAIT_MS = 1200;

export class VersionOrder {
  /** apply(event): a stored event, in order; ephemeral(event): one without a version; onGap(). */
  constructor({ apply, ephemeral, onGap }) {
    this.apply = apply;
    this.ephemeral = ephemeral;
    this.onGap = onGap;
    this.version = null; // null until the first snapshot
    this.held = new Map(); // version -> event waiting for the ones before it
    this.gapTimer = null;
  }

  /** A snapshot at `version`: what it already holds is dropped from the waiting events. */
  reset(version) {
    this.version = version;
    for (const v of [...this.held.keys()]) if (v <= version) this.held.delete(v);
  }

  /** Start over: the next snapshot decides everything. */
  forget() {
    this.version = null;
    this.held.clear();
  }

  stop() {
    clearTimeout(this.gapTimer);
    this.gapTimer = null;
  }

  ingest(event, { fromHistory = false } = {}) {
    const v = event.version;
    if (typeof v !== "number") {
      this.ephemeral(event);
      return;
    }
    if (this.version === null) {
      // no snapshot yet: keep it, the snapshot decides what is new
      this.held.set(v, event);
      return;
    }
    if (v <= this.version) return; // a duplicate (already applied)
    if (v === this.version + 1) {
      this._apply(event);
      if (!fromHistory) this.drain();
      return;
    }
    if (!this.held.has(v)) this.held.set(v, event);
    if (!fromHistory) this._armGapTimer();
  }

  _apply(event) {
    this.version = event.version;
    this.apply(event);
  }

  drain() {
    if (this.version === null) return;
    while (this.held.has(this.version + 1)) {
      const event = this.held.get(this.version + 1);
      this.held.delete(this.version + 1);
      this._apply(event);
    }
    for (const v of [...this.held.keys()]) if (v <= this.version) this.held.delete(v);
    if (this.held.size) this._armGapTimer();
    else this.stop();
  }

  _armGapTimer() {
    if (this.gapTimer) return;
    this.gapTimer = setTimeout(() => {
      this.gapTimer = null;
      if (this.held.size && this.version !== null && !this.held.has(this.version + 1)) this.onGap();
      else this.drain();
    }, GAP_WAIT_MS);
  }
}
