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

/** Draw (or redraw, when something changed) the character parts of a token element. */
export function decorateToken(el, token, { turn = false } = {}) {
  el.classList.toggle("is-turn", turn);
  let art = el.querySelector(":scope > .token-art");
  if (!art) {
    art = h("span", { class: "token-art", "aria-hidden": "true" });
    el.append(art);
  }
  const key = JSON.stringify([token.name || "", token.bars || [], token.conditions || []]);
  if (art.dataset.key === key) return;
  art.dataset.key = key;
  const bars = (token.bars || []).slice(0, 3);
  art.replaceChildren(...[
    token.conditions?.length
      ? h("span", { class: "token-conditions" }, ...token.conditions.map((c) => h("span", { class: "token-condition" }, c)))
      : null,
    bars.length ? h("span", { class: "token-bars" }, ...bars.map(barNode)) : null,
    token.name ? h("span", { class: "token-name" }, token.name) : null,
  ].filter(Boolean));
}
