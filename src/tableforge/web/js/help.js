// The help panel: every tool of the room page, with its mouse, touch and keyboard use. The GM's
// tools are listed for everyone (a player may wonder what the GM can hide), marked as the GM's.

import { h } from "./util.js";

const SECTIONS = [
  ["The board", [
    "Drag the empty board (or the map) to pan; the mouse wheel, pinching, or the + and − buttons zoom; Fit shows everything.",
    "Keyboard: focus the board, then the arrow keys pan (Shift: faster) and + / − zoom. Tab reaches the tokens.",
  ]],
  ["Tokens", [
    "Drag your token to move it: the others see it move live. Click or Tab to a token to select it.",
    "On a focused token: arrow keys move it (Shift: by 50), R / Shift+R rotate, + / − resize, ] and [ change its layer, Delete removes it.",
    "The Selected token panel has a button for each of these.",
    "Undo (beside Fit) or Ctrl+Z (Cmd+Z on a Mac) takes back your own last token change: a move, an edit, a bar or condition, placing or removing a token, up to 20 steps. It is refused if someone else changed that token since. Chat, dice, fog, scenes and turns are not undone.",
  ]],
  ["Chat and dice", [
    "/roll 2d20kh1+3 (or /r) rolls for the room to see; the Rolls menu beside the box chooses who sees /roll and the dice buttons: everyone, the GM only, or only you.",
    "/gmroll 1d20 (or /gr) rolls for the GM's eyes only (and yours); /selfroll 1d20 (or /sr) only you see.",
    "/w name text whispers to one member (several: /w ann,bob text). Only they and you receive it; whispers are framed in purple.",
    "Arrow up / down in the box recall what you sent. Start with // to send a line beginning with a slash.",
  ]],
  ["Scenes", [
    "Each scene has its own map, tokens, grid and fog. Players see only the scene the GM moved them to; their board changes by itself.",
    "GM: click a scene's name to view it (players do not follow); Move players here sends everyone to it (marked 'players here'). Add, rename and remove scenes in the same panel; the players' scene cannot be removed.",
    "GM: Scene map (Images panel) makes an image the background of the scene you view, top-left corner at 0, 0; the grid settings are under the list.",
  ]],
  ["The GM layer (GM)", [
    "Place new tokens hidden: tokens you place from now on are on the GM layer. Players never receive them: not their picture, name or position.",
    "Hide from players / Reveal to players (Selected token panel, or H on a focused token) moves one token on or off the GM layer. Hidden tokens look faded to you and say 'hidden'.",
    "Show hidden tokens: untick it to see the board without them. In the Images panel, Hide / Reveal hides an image and every token showing it; an upload can be hidden from the start.",
  ]],
  ["Fog of war (GM)", [
    "Reveal ▭ / Hide ▭: drag across an area (or click two corners). Reveal ⬠ / Hide ⬠: click each corner, then double-click, press Enter or Finish; Backspace takes a corner back; Esc cancels, a second Esc puts the tool down.",
    "Keyboard: with a fog tool chosen, the arrow keys move a cross-hair (Shift: faster) and Space sets a corner.",
    "Reveal view / Hide view change exactly what the board shows now. Reveal all / Hide all clear the fog to one state (the areas drawn so far are dropped).",
    "You see the fog dark but see-through, and tokens under it marked 'under fog'; players see it opaque, and tokens under it are not sent to them at all.",
  ]],
  ["Spectators", [
    "A spectator link (GM: beside the invite link) lets people watch: they see what players see, and cannot move, chat or roll.",
  ]],
];

export function helpPanel() {
  return h("details", { class: "panel panel-help", id: "help-panel" },
    h("summary", {}, h("h3", { id: "help-title" }, "Help: tools and keys")),
    ...SECTIONS.map(([title, lines]) => h("section", { class: "help-section" },
      h("h4", {}, title), h("ul", {}, ...lines.map((line) => h("li", {}, line))))));
}
