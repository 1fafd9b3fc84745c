// The page: who is signed in, and which view to show (`#room=ID`, `#join=CODE`, else the lobby).

import { api, onUnauthorized, session } from "./api.js";
import { renderAuth, renderLobby } from "./lobby.js";
import { openRoom } from "./room.js";
import { describeError, h, toast } from "./util.js";

const PENDING_JOIN = "tableforge.pendingJoin";
const main = document.getElementById("main");
const account = document.getElementById("account");
let current = null; // the open room, if any

function parseHash() {
  const params = new URLSearchParams(location.hash.replace(/^#/, ""));
  return { room: params.get("room"), join: params.get("join") };
}

function renderAccount(user) {
  if (!user) {
    account.replaceChildren();
    return;
  }
  const logout = h("button", { type: "button", class: "link", id: "logout" }, "Log out");
  logout.addEventListener("click", async () => {
    closeCurrent(); // leave first: logging out closes this session's sockets (4401) on the server
    try {
      await api.logout();
    } catch {
      // the token may already be dead; forget it anyway
    }
    signedOut();
  });
  account.replaceChildren(h("span", { class: "whoami" }, "Signed in as ", h("strong", {}, user.username)), logout);
}

function closeCurrent() {
  if (current) {
    const room = current;
    current = null;
    room.leave();
  }
}

function signedOut(note) {
  closeCurrent();
  session.clear();
  renderAccount(null);
  document.title = "TableForge";
  renderAuth(main, { onDone: () => route(), note });
}

onUnauthorized(() => signedOut("Your session has expired. Please log in again."));

async function route() {
  const { room, join } = parseHash();
  if (join) {
    sessionStorage.setItem(PENDING_JOIN, join);
    history.replaceState(null, "", location.pathname + location.search);
  }
  const user = session.user;
  if (!session.token || !user) {
    closeCurrent();
    renderAccount(null);
    const pending = sessionStorage.getItem(PENDING_JOIN);
    renderAuth(main, {
      onDone: () => route(),
      note: pending ? "Log in or create an account to join the room you were invited to." : null,
    });
    return;
  }
  renderAccount(user);
  const pending = sessionStorage.getItem(PENDING_JOIN);
  if (pending) {
    sessionStorage.removeItem(PENDING_JOIN);
    try {
      const joined = await api.joinRoom(pending);
      toast(joined.role === "spectator" ? `You are watching ${joined.name} as a spectator.` : `You joined ${joined.name}.`, "info");
      location.hash = `room=${joined.id}`;
      return; // hashchange routes again
    } catch (err) {
      toast(describeError(err));
    }
  }
  if (room) {
    if (current && current.state.roomId === room) return;
    closeCurrent();
    current = openRoom(main, {
      roomId: room,
      user,
      token: session.token,
      onLeave: () => {
        if (current === null) return; // closed by the router itself
        current = null;
        if (parseHash().room) location.hash = "";
        else route();
      },
      onAuthFailed: () => signedOut("Your session has expired. Please log in again."),
    });
    return;
  }
  closeCurrent();
  document.title = "TableForge";
  renderLobby(main, { user, onOpenRoom: (id) => { location.hash = `room=${id}`; } });
}

window.addEventListener("hashchange", () => route());

async function start() {
  if (session.token) {
    try {
      const user = await api.me();
      session.save(user, null);
    } catch (err) {
      if (err.status === 401) {
        session.clear();
      } else {
        toast(describeError(err)); // keep the stored user; the socket retries by itself
      }
    }
  }
  route();
}

start();
