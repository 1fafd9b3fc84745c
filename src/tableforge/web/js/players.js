// The player list: who is in the room, their role, and who is online right now.

import { h } from "./util.js";

const ROLE_WORDS = { gm: "GM", player: "Player", spectator: "Spectator" };
const ROLE_ORDER = { gm: 0, player: 1, spectator: 2 };

export function renderPlayers(list, state) {
  const players = [...state.players.values()].sort((a, b) =>
    Number(b.is_online) - Number(a.is_online)
    || (ROLE_ORDER[a.role] ?? 1) - (ROLE_ORDER[b.role] ?? 1)
    || a.user.username.localeCompare(b.user.username));
  const online = players.filter((p) => p.is_online).length;
  list.replaceChildren(...players.map((p) => {
    const me = p.user.id === state.me.id;
    return h("li", { class: `player ${p.is_online ? "is-online" : "is-offline"}`, dataset: { userId: p.user.id } },
      h("span", { class: "presence-dot", "aria-hidden": "true" }),
      h("span", { class: "player-name" }, p.user.username, me ? h("span", { class: "player-you" }, " (you)") : null),
      h("span", { class: `role-badge role-${p.role}` }, ROLE_WORDS[p.role] || "Player"),
      h("span", { class: "player-status" }, p.is_online ? "online" : "offline"));
  }));
  return { total: players.length, online };
}
