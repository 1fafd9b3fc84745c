// The selected token's panel: what it is, where, who placed it, and buttons for every change
// (the same as the keys on a focused token: on a grid the arrows move a cell). A GM also hides it
// from the players or reveals it. Its character (name, bars, conditions) is tokenpanel.js.

import { h } from "./util.js";

export function renderSelection(panel, { id, board, state }) {
  const token = id && board.shown(id);
  if (!token) {
    panel.replaceChildren(h("p", { class: "muted" }, state.isSpectator
      ? "Click or tab to a token to see what it is."
      : "Click or tab to a token to select it. Arrow keys move it."));
    return;
  }
  const asset = state.assets.get(token.asset_id);
  const can = state.canChange(token);
  const button = (label, aria, fn, cls = "secondary", extra = {}) => {
    const b = h("button", { type: "button", class: cls, "aria-label": aria, disabled: !can, ...extra }, label);
    b.addEventListener("click", () => fn());
    return b;
  };
  const gm = state.isGm;
  const hiddenByImage = !!asset?.hidden;
  const hidden = state.isHidden(token);
  const fogged = gm && !hidden && state.isFogged(token);
  let note = null;
  if (state.isSpectator) note = "Spectators watch: they cannot change tokens.";
  else if (!can) note = "Only its owner or the GM can change it.";
  let visibility = null;
  if (gm) {
    visibility = h("p", { class: `selection-visibility${hidden || fogged ? " is-hidden" : ""}`, id: "selection-visibility" },
      hiddenByImage ? "Hidden from players: its image is hidden (Images panel)."
        : token.hidden ? "Hidden from players (GM layer)."
          : fogged ? "Under fog: players cannot see it." : "Players can see it.");
  }
  const isMap = token.z_index <= -1000;
  const size = isMap ? `×${(+token.scale).toFixed(2)}` : `${token.size || 1}×${token.size || 1} cells`;
  panel.replaceChildren(...[
    h("p", { class: "selection-name" }, h("strong", {}, token.name || asset?.name || "token"), ` placed by ${state.username(token.owner_id)}`),
    h("p", { class: "muted selection-meta", id: "selection-meta" },
      `x ${Math.round(token.x)}, y ${Math.round(token.y)} · ${Math.round(token.rotation || 0)}° · ${size} · layer ${token.z_index}`),
    visibility,
    note ? h("p", { class: "muted" }, note) : null,
    h("div", { class: "button-grid" },
      button("↺", "Rotate left 15 degrees", () => board.rotateBy(id, -15)),
      button("↻", "Rotate right 15 degrees", () => board.rotateBy(id, 15)),
      button("−", isMap ? "Make smaller" : "Smaller: fewer cells", () => board.scaleBy(id, 1 / 1.1)),
      button("+", isMap ? "Make bigger" : "Bigger: more cells", () => board.scaleBy(id, 1.1)),
      button("▲ Fwd", "Bring forward", () => board.layer(id, 1)),
      button("▼ Back", "Send back", () => board.layer(id, -1))),
    h("div", { class: "button-grid arrows" },
      button("←", "Move left", () => board.moveBy(id, -10, 0)),
      button("↑", "Move up", () => board.moveBy(id, 0, -10)),
      button("↓", "Move down", () => board.moveBy(id, 0, 10)),
      button("→", "Move right", () => board.moveBy(id, 10, 0))),
    h("div", { class: "actions" },
      gm ? button(token.hidden ? "Reveal to players" : "Hide from players",
        token.hidden ? "Reveal this token to the players (H)" : "Hide this token from the players: GM layer (H)",
        () => board.toggleHidden(id), "secondary", { id: "toggle-hidden", "aria-pressed": String(!!token.hidden) }) : null,
      button("Remove", "Remove this token from the board", () => board.remove(id), "danger")),
  ].filter(Boolean));
}
