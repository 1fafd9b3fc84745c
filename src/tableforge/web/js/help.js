// The help panel: every tool of the room page, with its mouse, touch and keyboard use. The GM's
// tools are listed for everyone (a player may wonder what the GM can hide), marked as the GM's.

import { h } from "./util.js";

const SECTIONS = [
  ["The board", [
    "Drag the empty board (or the map) to pan; the mouse wheel, pinching, or the + and − buttons zoom; Fit shows everything.",
    "Keyboard: focus the board, then the arrow keys pan (Shift: faster) and + / − zoom. Tab reaches the tokens.",
    "On a phone the panels (grid, selected token, turn order, chat) are below the board: scroll down to them.",
  ]],
  ["Tokens", [
    "Drag your token to move it: the others see it move live. Click or Tab to a token to select it.",
    "Dropped tokens snap to the grid: a cell's centre, or a hex's (a 2×2 token to the corner between cells). Hold Alt while you let go to drop it exactly where it is.",
    "On a focused token: arrow keys move it one cell (Alt + arrow: 10 px freely, Shift: 50), R / Shift+R rotate, + / − change its size in cells (1×1, 2×2…), ] and [ change its layer, P pings it, Delete removes it.",
    "The Selected token panel has a button for each of these.",
    "Undo (beside Fit) or Ctrl+Z (Cmd+Z on a Mac) takes back your own last token change: a move, an edit, a bar or condition, placing or removing a token, up to 20 steps. It is refused if someone else changed that token since. Chat, dice, fog, scenes and turns are not undone.",
  ]],
  ["Tokens as characters", [
    "Selected token panel: its name (shown under it), its size in cells, its bars (HP 7/10: type a value and press Set, or use − and +) and its conditions (tags such as prone: pick one of the game system's or type your own, × removes one).",
    "The owner and the GM change them; the others see only what the GM lets them see. GM: each of name, bar and conditions has a 'seen by' menu: everyone, owner and GM, or GM only (players are never sent a hidden field). Add bar puts up to three bars on a token; the × at the end of a bar's row removes it (Undo brings it back).",
  ]],
  ["Grid (GM)", [
    "The Grid panel sets the scene's grid: squares, pointy- or flat-top hexes, or none; cell size; offset; colour and opacity (or hidden lines: cells still snap and measure); units per cell and unit (5 ft); the diagonal rule (5-5-5, 5-10-5, or a straight line). Set grid saves it for everyone.",
    "Align grid: drag the board to move the grid onto the map's own lines, or use the arrow keys (1 px, Shift: 10) and + / − for the cell size; Enter or Save alignment keeps it, Esc or Cancel drops it.",
  ]],
  ["Ruler and ping", [
    "Ruler (button, or R with the board focused): drag to measure in the scene's units; everyone sees your ruler and its distance live. Drag again starting from the ruler's end to add a bend there (and again for more bends, the total is measured along them). A click elsewhere clears it; R or Esc puts the ruler away.",
    "Keyboard ruler: arrow keys stretch it one cell at a time from the middle of the view (Shift: five), Space adds a bend, Esc clears it.",
    "Ping: hold the mouse button or a finger still on the board for a moment, press P (at the pointer, or at the focused token), or the Ping button (middle of the view). Everyone on the scene sees a pulse there.",
  ]],
  ["Turn order", [
    "Select a token and press Add selected: its initiative is rolled with the game system's formula (or type a value first). Players add their own tokens.",
    "GM: Sort, ◀ Prev, Next ▶, Next round, × removes one, Clear. The token whose turn it is has a green ring on the board; on your token's turn, End my turn passes it on.",
  ]],
  ["Chat and dice", [
    "The room's game system is named beside the room's name; its dice presets are buttons under the chat box (the preset's name goes with the roll).",
    "/roll 1d20+5 stealth (a label after a space), 3d6! (exploding), 6d6>=5 (successes), 4dF (Fudge), 1d20+1d4+3, 3#1d20 (three rolls). Each die is shown: dropped ones struck through, exploded ones marked !, the dice they added ↳.",
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
