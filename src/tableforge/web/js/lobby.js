// Signing up / logging in, and the lobby: my rooms, joining by invite code, and creating a
// room from a game system found in the catalog (search, category, complexity, pages).

import { api, session } from "./api.js";
import { copyText, describeError, h, toast } from "./util.js";

export function inviteLink(code) {
  return `${location.origin}${location.pathname}#join=${encodeURIComponent(code)}`;
}

function field(label, input, hint) {
  const id = input.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  input.id = id;
  return h("div", { class: "field" }, h("label", { for: id }, label), input, hint ? h("p", { class: "hint" }, hint) : null);
}

function formError() {
  return h("p", { class: "form-error", role: "alert", "aria-live": "assertive" });
}

// -- sign up / log in -------------------------------------------------------------------------------
export function renderAuth(root, { onDone, note }) {
  const username = h("input", { id: "auth-username", name: "username", autocomplete: "username", required: true,
    minlength: "3", maxlength: "32", pattern: "[A-Za-z0-9_.\\-]+", spellcheck: "false", autocapitalize: "none" });
  const password = h("input", { id: "auth-password", name: "password", type: "password", required: true,
    minlength: "8", autocomplete: "current-password" });
  const error = formError();
  const login = h("button", { type: "submit", class: "primary", value: "login", id: "auth-login" }, "Log in");
  const register = h("button", { type: "submit", class: "secondary", value: "register", id: "auth-register" }, "Create account");
  const form = h("form", { class: "card auth-card", "aria-labelledby": "auth-title" },
    h("h2", { id: "auth-title" }, "Sign in to play"),
    note ? h("p", { class: "note" }, note) : null,
    field("Username", username, "3–32 letters, digits, dot, dash or underscore."),
    field("Password", password, "At least 8 characters."),
    error,
    h("div", { class: "actions" }, login, register));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const mode = event.submitter?.value || "login";
    error.textContent = "";
    if (mode === "register") password.setAttribute("autocomplete", "new-password");
    for (const button of [login, register]) button.disabled = true;
    try {
      const result = mode === "register"
        ? await api.register(username.value.trim(), password.value)
        : await api.login(username.value.trim(), password.value);
      session.save(result.user, result.token);
      onDone(result.user);
    } catch (err) {
      error.textContent = describeError(err);
      password.focus();
    } finally {
      for (const button of [login, register]) button.disabled = false;
    }
  });
  root.replaceChildren(h("section", { class: "auth-view" },
    h("div", { class: "intro" },
      h("h2", {}, "A table for your group, wherever you are"),
      h("p", {}, "TableForge is a real-time virtual tabletop: put maps and tokens on a shared board, move them together, "
        + "chat and roll dice. Create a room from a game system, send your friends the invite link, and play."),
      h("ul", { class: "feature-list" },
        h("li", {}, "Drag tokens and everyone sees them move live"),
        h("li", {}, "Dice in the chat: /roll 2d20kh1+3"),
        h("li", {}, "Reconnects by itself and never loses the board"))),
    form));
  username.focus();
}

// -- the lobby ------------------------------------------------------------------------------------------
export function renderLobby(root, { user, onOpenRoom }) {
  const roomsList = h("ul", { class: "room-list", id: "room-list", "aria-live": "polite" });
  const roomsStatus = h("p", { class: "muted" }, "Loading your rooms…");

  async function loadRooms() {
    try {
      const data = await api.rooms();
      const rooms = data.rooms || [];
      roomsStatus.textContent = rooms.length ? "" : "You are not in any room yet: create one or join with an invite code.";
      roomsList.replaceChildren(...rooms.map((room) => roomItem(room)));
    } catch (err) {
      roomsStatus.textContent = describeError(err);
    }
  }

  function roomItem(room) {
    const open = h("button", { type: "button", class: "primary", onclick: () => onOpenRoom(room.id) }, "Open");
    open.setAttribute("aria-label", `Open ${room.name}`);
    const parts = [h("div", { class: "room-main" },
      h("span", { class: "room-name" }, room.name),
      h("span", { class: `role-badge role-${room.role}` }, { gm: "GM", spectator: "Spectator" }[room.role] || "Player"),
      room.is_active === false ? h("span", { class: "badge closed" }, "closed") : null)];
    const actions = h("div", { class: "room-actions" });
    if (room.invite_code) {
      const copy = h("button", { type: "button", class: "secondary" }, "Copy invite link");
      copy.setAttribute("aria-label", `Copy the invite link for ${room.name}`);
      copy.addEventListener("click", async () => {
        const ok = await copyText(inviteLink(room.invite_code));
        toast(ok ? "Invite link copied." : `Copy this link: ${inviteLink(room.invite_code)}`, ok ? "info" : "error");
      });
      parts.push(h("div", { class: "room-invite" }, "Invite code ", h("code", {}, room.invite_code)));
      actions.append(copy);
    }
    if (room.is_active !== false) actions.append(open);
    parts.push(actions);
    return h("li", { class: "room-item" }, ...parts);
  }

  // join by invite code
  const codeInput = h("input", { id: "join-code", name: "invite_code", required: true, minlength: "4", maxlength: "16",
    autocomplete: "off", spellcheck: "false", autocapitalize: "characters", placeholder: "e.g. K7QX2MPA9R" });
  const joinError = formError();
  const joinForm = h("form", { class: "card", "aria-labelledby": "join-title" },
    h("h2", { id: "join-title" }, "Join a room"),
    field("Invite code", codeInput, "Or open the invite link your GM sent you."),
    joinError,
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Join")));
  joinForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    joinError.textContent = "";
    try {
      const room = await api.joinRoom(codeInput.value.trim().replace(/^.*#join=/, ""));
      onOpenRoom(room.id);
    } catch (err) {
      joinError.textContent = describeError(err);
    }
  });

  // create from the catalog
  const nameInput = h("input", { id: "room-name", name: "name", required: true, maxlength: "100", placeholder: "Friday night game" });
  const search = h("input", { id: "catalog-search", type: "search", name: "search", maxlength: "100", placeholder: "fantasy, horror, d20…" });
  const category = h("select", { id: "catalog-category", name: "category" }, h("option", { value: "" }, "Any category"));
  const complexity = h("select", { id: "catalog-complexity", name: "complexity" },
    h("option", { value: "" }, "Any complexity"),
    h("option", { value: "beginner" }, "Beginner"),
    h("option", { value: "intermediate" }, "Intermediate"),
    h("option", { value: "advanced" }, "Advanced"));
  const results = h("div", { class: "catalog-results", role: "radiogroup", "aria-labelledby": "catalog-legend", id: "catalog-results" });
  const pager = h("div", { class: "pager" });
  const createError = formError();
  let page = 1;
  const limit = 6;
  let chosen = "";
  let searchTimer = null;

  function systemOption(system) {
    const id = `sys-${system.id}`;
    const radio = h("input", { type: "radio", name: "game_system_id", value: system.id, id, checked: chosen === system.id });
    radio.addEventListener("change", () => {
      chosen = system.id;
    });
    return h("div", { class: "system-option" }, radio,
      h("label", { for: id },
        h("span", { class: "system-name" }, system.name, system.is_official ? h("span", { class: "badge" }, "official") : null),
        h("span", { class: "system-meta" },
          `${system.category} · ${system.complexity} · used in ${system.usage_count ?? 0} room${system.usage_count === 1 ? "" : "s"}`),
        system.description ? h("span", { class: "system-desc" }, system.description) : null));
  }

  let catalogRequest = 0;

  async function loadCatalog() {
    // Only the latest request draws the list: an earlier one (the first load, the previous filter) that
    // answers late must not replace what the current filters found.
    const mine = ++catalogRequest;
    results.setAttribute("aria-busy", "true");
    try {
      const data = await api.systems({ search: search.value.trim(), category: category.value, complexity: complexity.value, page, limit });
      if (mine !== catalogRequest) return;
      const systems = data.systems || [];
      const none = h("div", { class: "system-option" },
        h("input", { type: "radio", name: "game_system_id", value: "", id: "sys-none", checked: chosen === "", onchange: () => { chosen = ""; } }),
        h("label", { for: "sys-none" }, h("span", { class: "system-name" }, "No system"), h("span", { class: "system-meta" }, "just a board, chat and dice")));
      results.replaceChildren(none, ...systems.map(systemOption));
      if (!systems.length) results.append(h("p", { class: "muted" }, "No game system matches."));
      const pages = Math.max(1, Math.ceil((data.total || 0) / limit));
      const prev = h("button", { type: "button", class: "secondary", disabled: page <= 1 }, "Previous");
      const next = h("button", { type: "button", class: "secondary", disabled: page >= pages }, "Next");
      prev.addEventListener("click", () => { page -= 1; loadCatalog(); });
      next.addEventListener("click", () => { page += 1; loadCatalog(); });
      pager.replaceChildren(prev, h("span", { class: "muted", "aria-live": "polite" }, `Page ${page} of ${pages} · ${data.total} systems`), next);
    } catch (err) {
      if (mine === catalogRequest) results.replaceChildren(h("p", { class: "form-error" }, describeError(err)));
    } finally {
      if (mine === catalogRequest) results.removeAttribute("aria-busy");
    }
  }

  async function loadCategories() {
    try {
      const data = await api.systems({ limit: 100 });
      const names = [...new Set((data.systems || []).map((s) => s.category).filter(Boolean))].sort();
      category.append(...names.map((name) => h("option", { value: name }, name)));
    } catch {
      // the filter still works as "any"
    }
  }

  search.addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => { page = 1; loadCatalog(); }, 250);
  });
  for (const select of [category, complexity]) select.addEventListener("change", () => { page = 1; loadCatalog(); });

  const createForm = h("form", { class: "card create-card", "aria-labelledby": "create-title" },
    h("h2", { id: "create-title" }, "Create a room"),
    field("Room name", nameInput),
    h("fieldset", { class: "catalog" },
      h("legend", { id: "catalog-legend" }, "Game system"),
      h("div", { class: "catalog-filters" }, field("Search the catalog", search), field("Category", category), field("Complexity", complexity)),
      results, pager),
    createError,
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", id: "create-room" }, "Create room")));
  createForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    createError.textContent = "";
    try {
      const room = await api.createRoom(nameInput.value.trim(), chosen || null);
      onOpenRoom(room.id);
    } catch (err) {
      createError.textContent = describeError(err);
    }
  });

  root.replaceChildren(h("section", { class: "lobby" },
    h("div", { class: "lobby-main" },
      h("section", { class: "card", "aria-labelledby": "rooms-title" },
        h("h2", { id: "rooms-title" }, `Your rooms, ${user.username}`), roomsStatus, roomsList),
      joinForm),
    createForm));
  loadRooms();
  loadCategories();
  loadCatalog();
}
