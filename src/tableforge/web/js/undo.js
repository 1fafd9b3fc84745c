// Undo (docs/protocol.md, "Undo"): the button and Ctrl+Z (Cmd+Z on a Mac) send `undo`. The server
// inverts this user's last token change and sends the inverse to every socket, this one included,
// so the board changes through the ordinary event; a refusal (nothing_to_undo, undo_conflict, …)
// shows its message as a toast.

import { describeError, h, toast } from "./util.js";

export function undoButton({ socket, state }) {
  const button = h("button", {
    type: "button", id: "undo-button", title: "Undo your last token change (Ctrl+Z; Cmd+Z on a Mac)",
  }, "Undo");
  let busy = false; // one at a time: each undo goes one step further back
  const undo = async () => {
    if (busy || state.isSpectator) return;
    busy = true;
    try {
      await socket.request("undo");
    } catch (err) {
      toast(describeError(err));
    } finally {
      busy = false;
    }
  };
  const typing = (el) => el && (el.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(el.tagName));
  const onKey = (event) => {
    if (!button.isConnected) {
      document.removeEventListener("keydown", onKey); // the room was left
      return;
    }
    if (event.key.toLowerCase() !== "z" || event.shiftKey || event.altKey || !(event.ctrlKey || event.metaKey)) return;
    if (typing(event.target) || button.hidden) return; // a text field's own undo stays
    event.preventDefault();
    undo();
  };
  button.addEventListener("click", undo);
  document.addEventListener("keydown", onKey);
  state.on("room", () => {
    button.hidden = state.isSpectator;
  });
  return button;
}
