// Small DOM and formatting helpers shared by the other modules.

/** Create an element: h("button", {class: "x", onclick: fn, "aria-label": "y"}, "text", child). */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "style" && typeof value === "object") Object.assign(node.style, value);
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export const $ = (selector, root = document) => root.querySelector(selector);

/** Words for the error codes a person may meet (HTTP and WebSocket use the same codes). */
const WORDS = {
  file_too_large: "That file is too big to upload.",
  too_large: "That is too big for the server.",
  image_too_large: "That image has too many pixels.",
  unsupported_image: "That file is not an image the table can show (use PNG, JPEG, WebP or GIF).",
  unsupported_media_type: "That kind of file is not accepted.",
  empty_file: "That file is empty.",
  corrupt_image: "That image looks damaged.",
  conflict: "Someone else changed that token first, so your change was not applied.",
  not_token_owner: "You can only change your own tokens (the GM can change any).",
  not_gm: "Only the game master can do that.",
  spectator_read_only: "Spectators watch the game: they cannot move tokens, chat or roll.",
  scene_not_found: "That scene no longer exists.",
  scene_in_use: "The players are on that scene: move them to another one first.",
  too_many_scenes: "A room holds at most 100 scenes.",
  fog_full: "This scene's fog is full: use Reveal all or Hide all, then draw again.",
  unknown_recipient: "A whisper goes to members of this room only.",
  not_uploader: "Only the uploader or the GM can remove that image.",
  not_member: "You are not a member of that room.",
  not_joined: "You are not connected to that room yet.",
  room_closed: "This room has been closed.",
  room_not_found: "That room does not exist.",
  invite_not_found: "No open room has that invite code.",
  token_not_found: "That token is no longer on the board.",
  asset_not_found: "That image is no longer in the room.",
  username_taken: "That username is taken. Pick another one.",
  invalid_credentials: "Wrong username or password.",
  invalid_token: "Your session has expired. Please log in again.",
  unauthorized: "Please log in.",
  bad_dice: "That is not dice notation the table understands (try 1d20+5 stealth, 2d20kh1, 3d6!, 6d6>=5, 4dF or 3#1d20).",
  bad_grid: "That grid setting is out of range.",
  bad_token_field: "That token field is not valid.",
  bad_token_size: "A token is 0.25 to 20 cells wide.",
  bar_not_found: "That token has no such bar.",
  nothing_to_change: "There was nothing to change.",
  bad_measurement: "A ruler needs two points or more.",
  initiative_empty: "The turn order is empty: add a token first.",
  initiative_full: "The turn order is full (50 entries).",
  entry_not_found: "That entry is no longer in the turn order.",
  rate_limited: "Slow down: too many actions at once.",
  too_many_rooms: "This connection has joined too many rooms.",
  network: "The server could not be reached. Check your connection and try again.",
  disconnected: "The connection dropped before the server confirmed that action.",
  timeout: "The server did not answer in time.",
  internal_error: "Something went wrong on the server.",
  unavailable: "The server is busy or starting up; try again in a moment.",
};

export function formatBytes(n) {
  if (n >= 1024 * 1024) return `${Math.round((n / (1024 * 1024)) * 10) / 10} MB`;
  if (n >= 1024) return `${Math.round(n / 1024)} KB`;
  return `${n} bytes`;
}

/** A sentence for an error object `{code, message}` (or an Error carrying them). */
export function describeError(err) {
  if (!err) return "Something went wrong.";
  const code = err.code || "";
  const words = WORDS[code];
  let detail = err.message && err.message !== words ? String(err.message) : "";
  detail = detail.replace(/(\d{4,})[ -]byte(s?)/g, (_, n) => formatBytes(Number(n)));
  if (words && detail && !["invalid_credentials", "username_taken", "conflict"].includes(code)) {
    return `${words} (${detail})`;
  }
  if (words) return words;
  if (detail) return detail.charAt(0).toUpperCase() + detail.slice(1);
  return "Something went wrong.";
}

let toastRoot = null;

/** Show a short message in the live region (announced to screen readers). */
export function toast(message, kind = "error", ms = 6000) {
  toastRoot = toastRoot || document.getElementById("toasts");
  if (!toastRoot) return;
  const item = h("div", { class: `toast toast-${kind}`, role: kind === "error" ? "alert" : "status" }, message);
  const close = h("button", { class: "toast-close", type: "button", "aria-label": "Dismiss" }, "×");
  close.addEventListener("click", () => item.remove());
  item.append(close);
  toastRoot.append(item);
  while (toastRoot.children.length > 4) toastRoot.firstElementChild.remove();
  setTimeout(() => item.remove(), ms);
}

export function showError(err) {
  toast(describeError(err), "error");
}

export function formatTime(iso) {
  if (!iso) return "";
  const date = typeof iso === "number" ? new Date(iso) : new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

export const clamp = (value, lo, hi) => Math.min(hi, Math.max(lo, value));

/** Copy text to the clipboard; falls back to a selected hidden textarea. */
export async function copyText(text) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch {
    // fall through to the old way
  }
  const area = h("textarea", { class: "visually-hidden", "aria-hidden": "true" });
  area.value = text;
  document.body.append(area);
  area.select();
  let ok = false;
  try {
    ok = document.execCommand("copy");
  } catch {
    ok = false;
  }
  area.remove();
  return ok;
}
