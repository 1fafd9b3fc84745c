// The room view: board (with the GM's tools over it), players, scenes, selected token, chat and
// dice, images, help; wired to one RoomSocket. What a role may not see never reaches this page
// (the server filters it); what a role may not do is not offered (and refused by the server).

import { api } from "./api.js";
import { Board } from "./board.js";
import { Chat } from "./chat.js";
import { GmTools } from "./gmtools.js";
import { helpPanel } from "./help.js";
import { ImagesPanel } from "./images.js";
import { inviteLink } from "./lobby.js";
import { renderPlayers } from "./players.js";
import { RoomState } from "./roomstate.js";
import { ScenesPanel } from "./scenes.js";
import { renderSelection } from "./selection.js";
import { RoomSocket } from "./socket.js";
import { undoButton } from "./undo.js";
import { copyText, describeError, h, toast } from "./util.js";

const STATUS_WORDS = {
  connecting: "Connecting…",
  online: "Connected",
  reconnecting: "Reconnecting…",
  offline: "Offline",
};
const DICE = [4, 6, 8, 10, 12, 20, 100];

export function openRoom(root, { roomId, user, token, onLeave, onAuthFailed }) {
  const state = new RoomState(roomId, user);
  const status = h("span", { class: "conn-status is-connecting", role: "status", id: "conn-status" }, STATUS_WORDS.connecting);
  const title = h("h2", { class: "room-title", id: "room-title" }, "Room");
  const roleNote = h("span", { class: "role-note", id: "role-note", hidden: true });
  const inviteButton = h("button", { type: "button", class: "secondary", hidden: true, id: "copy-invite" }, "Copy invite link");
  const spectatorButton = h("button", { type: "button", class: "secondary", hidden: true, id: "copy-spectator-invite" },
    "Copy spectator link");
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

  const chatLog = h("ol", { class: "chat-log", id: "chat-log", role: "log", "aria-live": "polite", "aria-label": "Chat and dice" });
  const chatInput = h("input", { id: "chat-input", name: "text", autocomplete: "off", maxlength: "2000", placeholder: "Say something, /roll 2d20kh1+3, /w name text" });
  const visibility = h("select", { id: "roll-visibility", "aria-label": "Who sees your rolls" },
    h("option", { value: "room" }, "Rolls: everyone"),
    h("option", { value: "gm" }, "Rolls: GM only"),
    h("option", { value: "self" }, "Rolls: only me"));
  const diceButtons = DICE.map((n) => h("button", { type: "button", class: "secondary die-button", dataset: { sides: String(n) },
    "aria-label": `Roll a d${n}` }, `d${n}`));
  const chatForm = h("form", { class: "chat-form", id: "chat-form" },
    h("div", { class: "chat-line" },
      h("label", { for: "chat-input", class: "visually-hidden" }, "Message, /roll dice, or /w name to whisper"),
      chatInput, h("button", { type: "submit", class: "primary" }, "Send")),
    h("div", { class: "dice-bar", role: "group", "aria-label": "Dice" }, visibility, ...diceButtons));
  const spectatorNote = h("p", { class: "note", id: "spectator-note", hidden: true },
    "You are watching as a spectator: you see what the players see, and cannot chat, roll or move tokens.");

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
  const board = new Board({ viewport, state, socket, onSelect: (id) => renderSelection(selection, { id, board, state }) });
  const gmTools = new GmTools({ board, state, socket });
  const scenes = new ScenesPanel({ state, socket });
  const images = new ImagesPanel({ roomId, user, state, board, scenes });
  const chat = new Chat({ log: chatLog, form: chatForm, input: chatInput, state, socket, visibility, note: spectatorNote });
  for (const b of diceButtons) {
    b.addEventListener("click", () => chat.roll(`1d${b.dataset.sides}`).catch((err) => toast(describeError(err))));
  }

  root.replaceChildren(h("section", { class: "room-view", "aria-labelledby": "room-title" },
    h("header", { class: "room-bar" }, title, status, roleNote,
      h("div", { class: "room-bar-actions" }, inviteButton, spectatorButton, closeButton, lobbyButton)),
    h("div", { class: "room-grid" },
      h("div", { class: "board-column" },
        gmTools.el,
        h("section", { class: "board-wrap", "aria-label": "Board" },
          viewport, emptyHint,
          h("div", { class: "board-controls" }, zoomOut, zoomIn, fitButton, undoButton({ socket, state })))),
      h("aside", { class: "side" },
        h("section", { class: "panel", "aria-labelledby": "players-title" },
          h("h3", { id: "players-title" }, "Players ", playersCount), playersList),
        scenes.el,
        h("section", { class: "panel", "aria-labelledby": "selection-title" },
          h("h3", { id: "selection-title" }, "Selected token"), selection),
        h("section", { class: "panel panel-chat", "aria-labelledby": "chat-title" },
          h("h3", { id: "chat-title" }, "Chat and dice"), chatLog, spectatorNote, chatForm),
        images.el,
        helpPanel()))));

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
    spectatorButton.hidden = !room.spectator_invite_code;
    closeButton.hidden = !state.isGm;
    roleNote.hidden = state.isGm || !state.role;
    roleNote.textContent = state.isSpectator ? "Spectator" : "Player";
    root.dataset.role = state.role || "";
  });
  const copyLink = async (code, what) => {
    const link = inviteLink(code);
    const ok = await copyText(link);
    toast(ok ? `${what} copied: ${link}` : `Copy this link: ${link}`, ok ? "info" : "error", 10000);
  };
  inviteButton.addEventListener("click", () => copyLink(state.room.invite_code, "Invite link"));
  spectatorButton.addEventListener("click", () => copyLink(state.room.spectator_invite_code, "Spectator link (watch only)"));
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

  // -- board ------------------------------------------------------------------------------------------
  zoomIn.addEventListener("click", () => board.zoomAt(1.25));
  zoomOut.addEventListener("click", () => board.zoomAt(1 / 1.25));
  fitButton.addEventListener("click", () => board.fit());
  const hint = () => {
    emptyHint.hidden = state.tokens.size > 0 || !!state.scene?.map;
    emptyHint.textContent = state.isSpectator ? "Nothing on this board yet."
      : "The board is empty. Upload an image below to place a map or a token.";
  };
  state.on("tokens", hint);
  state.on("scene", hint);
  state.on("scene", (detail) => {
    if (detail?.moved) toast(`The game master moved you to "${state.scene?.name || "another scene"}".`, "info");
  });
  // The scene on a GM's board was removed (here or by another GM): view the players' scene.
  state.on("scene-removed", () => {
    if (state.isGm && state.playersSceneId) socket.viewScene(state.playersSceneId).catch((err) => toast(describeError(err)));
  });

  // -- players --------------------------------------------------------------------------------------------
  state.on("players", () => {
    const { total, online } = renderPlayers(playersList, state);
    playersCount.textContent = `(${online} of ${total} online)`;
    board.renderAll(); // owner names in labels
  });

  // Someone new joined: player.joined does not carry a role (a spectator link may have brought them).
  let asking = null; // one request at a time; newcomers meanwhile ask once more after it
  let askAgain = false;
  const askRoles = async () => {
    try {
      const { players } = await api.players(roomId);
      for (const p of players) {
        const known = state.players.get(p.user.id);
        if (known) state.players.set(p.user.id, { ...known, role: p.role });
      }
      state.emit("players");
    } catch {
      // the badge says "Player" until the next snapshot; nothing else depends on it
    }
  };
  state.on("newcomer", () => {
    if (asking) {
      askAgain = true;
      return;
    }
    asking = askRoles().then(async () => {
      while (askAgain) {
        askAgain = false;
        await askRoles();
      }
      asking = null;
    });
  });

  renderSelection(selection, { id: null, board, state });
  window.tableforge = { state, socket, board, chat, scenes, gmTools };
  socket.connect();
  return { leave, state, socket, board };
}
