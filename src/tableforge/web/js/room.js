// The room view: board, players, selected token, images, chat; wired to one RoomSocket.

import { api } from "./api.js";
import { Board } from "./board.js";
import { Chat } from "./chat.js";
import { inviteLink } from "./lobby.js";
import { renderPlayers } from "./players.js";
import { RoomState } from "./roomstate.js";
import { RoomSocket } from "./socket.js";
import { copyText, describeError, h, toast } from "./util.js";

const STATUS_WORDS = {
  connecting: "Connecting…",
  online: "Connected",
  reconnecting: "Reconnecting…",
  offline: "Offline",
};

export function openRoom(root, { roomId, user, token, onLeave, onAuthFailed }) {
  const state = new RoomState(roomId, user);
  const status = h("span", { class: "conn-status is-connecting", role: "status", id: "conn-status" }, STATUS_WORDS.connecting);
  const title = h("h2", { class: "room-title", id: "room-title" }, "Room");
  const inviteButton = h("button", { type: "button", class: "secondary", hidden: true, id: "copy-invite" }, "Copy invite link");
  const closeButton = h("button", { type: "button", class: "danger", hidden: true }, "Close room");
  const lobbyButton = h("button", { type: "button", class: "secondary", id: "back-to-lobby" }, "Lobby");

  const viewport = h("div", {
    class: "board-viewport", id: "board", tabindex: "0", role: "application",
    "aria-label": "Game board. Arrow keys pan, + and - zoom. Tab to reach the tokens.",
  });
  const zoomIn = h("button", { type: "button", "aria-label": "Zoom in" }, "+");
  const zoomOut = h("button", { type: "button", "aria-label": "Zoom out" }, "−");
  const fitButton = h("button", { type: "button", "aria-label": "Fit the board in view" }, "Fit");
  const emptyHint = h("p", { class: "board-empty-hint" }, "The board is empty. Upload an image below to place a map or a token.");

  const playersList = h("ul", { class: "player-list", id: "player-list", "aria-live": "polite" });
  const playersCount = h("span", { class: "muted" });

  const selection = h("div", { class: "selection", id: "selection" });

  // images: upload + library
  const fileInput = h("input", { type: "file", id: "upload-file", name: "file", accept: "image/png,image/jpeg,image/webp,image/gif", required: true });
  const nameInput = h("input", { id: "upload-name", name: "name", maxlength: "200", placeholder: "Goblin, Tavern map…" });
  const asToken = h("input", { type: "radio", name: "use", value: "token", id: "use-token", checked: true });
  const asMap = h("input", { type: "radio", name: "use", value: "map", id: "use-map" });
  const uploadButton = h("button", { type: "submit", class: "primary", id: "upload-button" }, "Upload and place");
  const uploadError = h("p", { class: "form-error", role: "alert" });
  const uploadForm = h("form", { class: "upload-form", "aria-label": "Upload an image" },
    h("div", { class: "field" }, h("label", { for: "upload-file" }, "Image (PNG, JPEG, WebP or GIF)"), fileInput),
    h("div", { class: "field" }, h("label", { for: "upload-name" }, "Name (optional)"), nameInput),
    h("fieldset", { class: "inline" }, h("legend", {}, "Place it as"),
      h("span", {}, asToken, h("label", { for: "use-token" }, "a token")),
      h("span", {}, asMap, h("label", { for: "use-map" }, "a map (under the tokens)"))),
    uploadError,
    h("div", { class: "actions" }, uploadButton));
  const library = h("ul", { class: "library", id: "library" });
  const imagesPanel = h("details", { class: "panel panel-images", id: "images-panel", open: true },
    h("summary", {}, h("h3", { id: "images-title" }, "Images: upload, place as token or map")), uploadForm, library);
  let imagesPanelSet = false;

  const chatLog = h("ol", { class: "chat-log", id: "chat-log", role: "log", "aria-live": "polite", "aria-label": "Chat and dice" });
  const chatInput = h("input", { id: "chat-input", name: "text", autocomplete: "off", maxlength: "2000", placeholder: "Say something, or /roll 2d20kh1+3" });
  const chatForm = h("form", { class: "chat-form", id: "chat-form" },
    h("label", { for: "chat-input", class: "visually-hidden" }, "Message, or /roll dice"),
    chatInput, h("button", { type: "submit", class: "primary" }, "Send"));

  root.replaceChildren(h("section", { class: "room-view", "aria-labelledby": "room-title" },
    h("header", { class: "room-bar" }, title, status,
      h("div", { class: "room-bar-actions" }, inviteButton, closeButton, lobbyButton)),
    h("div", { class: "room-grid" },
      h("section", { class: "board-wrap", "aria-label": "Board" },
        viewport, emptyHint,
        h("div", { class: "board-controls" }, zoomOut, zoomIn, fitButton)),
      h("aside", { class: "side" },
        h("section", { class: "panel", "aria-labelledby": "players-title" },
          h("h3", { id: "players-title" }, "Players ", playersCount), playersList),
        h("section", { class: "panel", "aria-labelledby": "selection-title" },
          h("h3", { id: "selection-title" }, "Selected token"), selection),
        h("section", { class: "panel panel-chat", "aria-labelledby": "chat-title" },
          h("h3", { id: "chat-title" }, "Chat and dice"), chatLog, chatForm),
        imagesPanel))));

  let left = false;
  const socket = new RoomSocket({
    roomId,
    token,
    getTicket: () => api.wsTicket(),
    handlers: {
      onSnapshot: (snapshot, meta) => state.applySnapshot(snapshot, meta),
      onEvent: (event) => state.applyEvent(event),
      onEphemeral: (event) => board.onEphemeral(event),
      onStatus: (kind, detail) => setStatus(kind, detail),
      onNotice: (frame) => {
        if (frame.type === "room.closed") {
          toast("The game master closed this room.", "info");
          leave();
        } else if (frame.type === "system.broadcast") {
          toast(`Announcement: ${frame.message}`, "info", 12000);
        }
      },
      onError: (err) => toast(describeError(err)),
      onAuthFailed: () => {
        if (!left) onAuthFailed();
      },
      onJoinFailed: (err) => {
        toast(describeError(err));
        leave();
      },
    },
  });
  const board = new Board({ viewport, state, socket, onSelect: (id) => renderSelection(id) });
  const chat = new Chat({ log: chatLog, form: chatForm, input: chatInput, state, socket });

  function setStatus(kind, detail = {}) {
    let words = STATUS_WORDS[kind] || kind;
    if (kind === "reconnecting" && detail.delay) words = `Connection lost — reconnecting in ${Math.ceil(detail.delay / 1000)} s…`;
    status.textContent = words;
    status.className = `conn-status is-${kind}`;
    root.dataset.connection = kind;
  }

  function leave() {
    if (left) return;
    left = true;
    socket.close();
    onLeave();
  }

  // -- header -------------------------------------------------------------------------------------------
  state.on("room", (room) => {
    title.textContent = room.name;
    document.title = `${room.name} · TableForge`;
    inviteButton.hidden = !room.invite_code;
    closeButton.hidden = !state.isGm;
  });
  inviteButton.addEventListener("click", async () => {
    const link = inviteLink(state.room.invite_code);
    const ok = await copyText(link);
    toast(ok ? `Invite link copied: ${link}` : `Copy this link: ${link}`, ok ? "info" : "error", 10000);
  });
  closeButton.addEventListener("click", async () => {
    if (!window.confirm("Close this room for everyone? Nobody can play in it afterwards.")) return;
    try {
      await api.closeRoom(roomId);
      leave();
    } catch (err) {
      toast(describeError(err));
    }
  });
  lobbyButton.addEventListener("click", () => leave());

  // -- board controls --------------------------------------------------------------------------------
  zoomIn.addEventListener("click", () => board.zoomAt(1.25));
  zoomOut.addEventListener("click", () => board.zoomAt(1 / 1.25));
  fitButton.addEventListener("click", () => board.fit());
  state.on("tokens", () => {
    emptyHint.hidden = state.tokens.size > 0;
  });

  // -- players --------------------------------------------------------------------------------------------
  state.on("players", () => {
    const { total, online } = renderPlayers(playersList, state);
    playersCount.textContent = `(${online} of ${total} online)`;
    board.renderAll(); // owner names in labels
  });

  // -- selected token -----------------------------------------------------------------------------------
  function renderSelection(id) {
    const token = id && board.shown(id);
    if (!token) {
      selection.replaceChildren(h("p", { class: "muted" }, "Click or tab to a token to select it. Arrow keys move it."));
      return;
    }
    const asset = state.assets.get(token.asset_id);
    const can = state.canChange(token);
    const button = (label, aria, fn, cls = "secondary") => {
      const b = h("button", { type: "button", class: cls, "aria-label": aria, disabled: !can }, label);
      b.addEventListener("click", () => fn());
      return b;
    };
    selection.replaceChildren(...[
      h("p", { class: "selection-name" }, h("strong", {}, asset?.name || "token"), ` placed by ${state.username(token.owner_id)}`),
      h("p", { class: "muted selection-meta" },
        `x ${Math.round(token.x)}, y ${Math.round(token.y)} · ${Math.round(token.rotation || 0)}° · ×${(+token.scale).toFixed(2)} · layer ${token.z_index}`),
      can ? null : h("p", { class: "muted" }, "Only its owner or the GM can change it."),
      h("div", { class: "button-grid" },
        button("↺", "Rotate left 15 degrees", () => board.rotateBy(id, -15)),
        button("↻", "Rotate right 15 degrees", () => board.rotateBy(id, 15)),
        button("−", "Make smaller", () => board.scaleBy(id, 1 / 1.1)),
        button("+", "Make bigger", () => board.scaleBy(id, 1.1)),
        button("▲ Fwd", "Bring forward", () => board.layer(id, 1)),
        button("▼ Back", "Send back", () => board.layer(id, -1))),
      h("div", { class: "button-grid arrows" },
        button("←", "Move left", () => board.moveBy(id, -10, 0)),
        button("↑", "Move up", () => board.moveBy(id, 0, -10)),
        button("↓", "Move down", () => board.moveBy(id, 0, 10)),
        button("→", "Move right", () => board.moveBy(id, 10, 0))),
      h("div", { class: "actions" }, button("Remove", "Remove this token from the board", () => board.remove(id), "danger")),
    ].filter(Boolean));
  }
  renderSelection(null);

  // -- images ---------------------------------------------------------------------------------------------
  uploadForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    uploadError.textContent = "";
    const file = fileInput.files && fileInput.files[0];
    if (!file) {
      uploadError.textContent = "Choose an image file first.";
      return;
    }
    uploadButton.disabled = true;
    uploadButton.textContent = "Uploading…";
    try {
      const asset = await api.uploadAsset(roomId, file, nameInput.value.trim() || file.name.replace(/\.[^.]+$/, ""));
      if (!state.assets.has(asset.id)) {
        state.assets.set(asset.id, asset);
        state.emit("assets");
      }
      await board.place(asset, { asMap: asMap.checked });
      uploadForm.reset();
    } catch (err) {
      uploadError.textContent = describeError(err);
    } finally {
      uploadButton.disabled = false;
      uploadButton.textContent = "Upload and place";
    }
  });

  state.on("assets", () => {
    const assets = [...state.assets.values()];
    if (!imagesPanelSet && state.room) {
      imagesPanelSet = true; // open at first only on an empty board; then it is the person's choice
      imagesPanel.open = state.tokens.size === 0;
    }
    library.replaceChildren(...assets.map((asset) => {
      const place = h("button", { type: "button", class: "secondary", "aria-label": `Place ${asset.name} as a token` }, "Token");
      place.addEventListener("click", () => board.place(asset).catch((err) => toast(describeError(err))));
      const placeMap = h("button", { type: "button", class: "secondary", "aria-label": `Place ${asset.name} as a map` }, "Map");
      placeMap.addEventListener("click", () => board.place(asset, { asMap: true }).catch((err) => toast(describeError(err))));
      const canDelete = state.isGm || asset.uploader_id === user.id;
      const del = canDelete ? h("button", { type: "button", class: "danger", "aria-label": `Delete ${asset.name} and its tokens` }, "Delete") : null;
      del?.addEventListener("click", async () => {
        if (!window.confirm(`Delete ${asset.name} and every token that shows it?`)) return;
        try {
          await api.deleteAsset(asset.id);
        } catch (err) {
          toast(describeError(err));
        }
      });
      return h("li", { class: "library-item" },
        h("img", { src: asset.url, alt: "", loading: "lazy", width: "40", height: "40" }),
        h("span", { class: "library-name" }, asset.name),
        h("span", { class: "library-actions" }, place, placeMap, del));
    }));
    if (!assets.length) library.append(h("li", { class: "muted" }, "No images yet."));
  });

  window.tableforge = { state, socket, board, chat };
  socket.connect();
  return { leave, state, socket, board };
}
