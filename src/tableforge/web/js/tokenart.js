// What a token shows of its character (docs/protocol.md, "Tokens as characters"): its name under it,
// up to three bars on it (value of max, in the bar's colour), its conditions as small tags, and a
// ring when it is its turn. Only what the server sent this page is drawn: a bar or a name the
// server left out of this page's copy is not in the DOM at all.

import { h } from "./util.js";

const DEFAULT_BAR_COLOR = "#c0392b";

/** A bar in words: "HP 7 of 10". */
export function barWords(bar) {
  return `${bar.label} ${bar.value}${bar.max !== null && bar.max !== undefined ? ` of ${bar.max}` : ""}`;
}

/** The token's character in words, for its aria-label. */
export function describeCharacter(token) {
  const parts = (token.bars || []).map(barWords);
  if (token.conditions?.length) parts.push(token.conditions.join(", "));
  return parts.length ? `, ${parts.join(", ")}` : "";
}

function barNode(bar) {
  const max = bar.max;
  const share = max ? Math.max(0, Math.min(1, bar.value / max)) : 1;
  const color = /^#[0-9a-fA-F]{6}$/.test(bar.color || "") ? bar.color : DEFAULT_BAR_COLOR;
  const fill = h("span", { class: "token-bar-fill" });
  fill.style.width = `${Math.round(share * 100)}%`;
  fill.style.background = color;
  return h("span", { class: "token-bar", dataset: { key: bar.key }, title: barWords(bar) },
    fill, h("span", { class: "token-bar-text" }, max !== null && max !== undefined ? `${bar.value}/${max}` : String(bar.value)));
}

/**
 * Keep the name and conditions upright and around the token whatever its rotation: their layer
 * turns back by the token's rotation (about the token's centre, as the token turns) and takes the
 * size of the rotated token's bounding box, so the name sits under what one sees of the token and
 * the tags above it. The bars stay on the token and turn with it.
 */
function placeUpright(layer, { rotation = 0, w = 0, hgt = 0 }) {
  const turn = ((rotation % 360) + 360) % 360;
  const rad = (turn * Math.PI) / 180;
  const [sin, cos] = [Math.abs(Math.sin(rad)), Math.abs(Math.cos(rad))];
  const bw = w * cos + hgt * sin;
  const bh = w * sin + hgt * cos;
  layer.style.left = `${(w - bw) / 2}px`;
  layer.style.top = `${(hgt - bh) / 2}px`;
  layer.style.width = `${bw}px`;
  layer.style.height = `${bh}px`;
  layer.style.transform = turn ? `rotate(${-turn}deg)` : "";
}

/**
 * Draw (or redraw, when something changed) the character parts of a token element. `rotation`,
 * `w` and `hgt` are the token's turn in degrees and its drawn size (for the upright label layer).
 */
export function decorateToken(el, token, { turn = false, rotation = 0, w = 0, hgt = 0 } = {}) {
  el.classList.toggle("is-turn", turn);
  let art = el.querySelector(":scope > .token-art");
  if (!art) {
    art = h("span", { class: "token-art", "aria-hidden": "true" });
    el.append(art);
  }
  const key = JSON.stringify([token.name || "", token.bars || [], token.conditions || []]);
  if (art.dataset.key !== key) {
    art.dataset.key = key;
    const bars = (token.bars || []).slice(0, 3);
    const labels = [
      token.conditions?.length
        ? h("span", { class: "token-conditions" }, ...token.conditions.map((c) => h("span", { class: "token-condition" }, c)))
        : null,
      token.name ? h("span", { class: "token-name" }, token.name) : null,
    ].filter(Boolean);
    art.replaceChildren(...[
      bars.length ? h("span", { class: "token-bars" }, ...bars.map(barNode)) : null,
      labels.length ? h("span", { class: "token-upright" }, ...labels) : null,
    ].filter(Boolean));
  }
  const upright = art.querySelector(":scope > .token-upright");
  if (upright) placeUpright(upright, { rotation, w, hgt });
}
