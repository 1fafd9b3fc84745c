// The HTTP API (PROTOCOL.md): JSON in and out, `Authorization: Bearer`, errors as ApiError.

const TOKEN_KEY = "tableforge.token";
const USER_KEY = "tableforge.user";

export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message || code);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

export const session = {
  get token() {
    return localStorage.getItem(TOKEN_KEY);
  },
  get user() {
    try {
      return JSON.parse(localStorage.getItem(USER_KEY) || "null");
    } catch {
      return null;
    }
  },
  save(user, token) {
    if (token) localStorage.setItem(TOKEN_KEY, token);
    if (user) localStorage.setItem(USER_KEY, JSON.stringify(user));
  },
  clear() {
    localStorage.removeItem(TOKEN_KEY);
    localStorage.removeItem(USER_KEY);
  },
};

/** Listeners told when the server says our token is no longer good (401). */
const unauthorizedListeners = new Set();
export function onUnauthorized(fn) {
  unauthorizedListeners.add(fn);
}

export async function request(method, path, { json, form, query, auth = true } = {}) {
  let url = path;
  if (query) {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) {
      if (value !== undefined && value !== null && value !== "") params.set(key, String(value));
    }
    const text = params.toString();
    if (text) url += `?${text}`;
  }
  const headers = { Accept: "application/json" };
  const token = session.token;
  if (auth && token) headers.Authorization = `Bearer ${token}`;
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form) {
    body = form; // the browser sets the multipart boundary
  }
  let response;
  try {
    response = await fetch(url, { method, headers, body, credentials: "same-origin" });
  } catch (err) {
    throw new ApiError(0, "network", "the server could not be reached", String(err));
  }
  if (response.status === 204) return null;
  let data = null;
  const type = response.headers.get("content-type") || "";
  if (type.includes("json")) {
    try {
      data = await response.json();
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const error = (data && data.error) || {};
    const fallback = {
      413: "too_large", 415: "unsupported_media_type", 429: "rate_limited", 503: "unavailable",
    }[response.status];
    const err = new ApiError(response.status, error.code || fallback || `http_${response.status}`,
      error.message || response.statusText, error.details);
    if (response.status === 401 && auth && token && !path.startsWith("/api/auth/")) {
      for (const fn of unauthorizedListeners) fn(err);
    }
    throw err;
  }
  return data;
}

export const api = {
  register: (username, password) => request("POST", "/api/auth/register", { json: { username, password }, auth: false }),
  login: (username, password) => request("POST", "/api/auth/login", { json: { username, password }, auth: false }),
  logout: () => request("POST", "/api/auth/logout"),
  me: () => request("GET", "/api/users/me"),
  wsTicket: () => request("POST", "/api/auth/ws-ticket"),
  systems: (query) => request("GET", "/api/systems", { query, auth: false }),
  system: (systemId) => request("GET", `/api/systems/${encodeURIComponent(systemId)}`),
  rooms: () => request("GET", "/api/rooms"),
  createRoom: (name, gameSystemId) =>
    request("POST", "/api/rooms", { json: gameSystemId ? { name, game_system_id: gameSystemId } : { name } }),
  joinRoom: (inviteCode) => request("POST", "/api/rooms/join", { json: { invite_code: inviteCode } }),
  room: (roomId) => request("GET", `/api/rooms/${encodeURIComponent(roomId)}`),
  players: (roomId) => request("GET", `/api/rooms/${encodeURIComponent(roomId)}/players`),
  closeRoom: (roomId) => request("DELETE", `/api/rooms/${encodeURIComponent(roomId)}`),
  uploadAsset: (roomId, file, name, { hidden = false } = {}) => {
    const form = new FormData();
    form.append("file", file);
    if (name) form.append("name", name);
    if (hidden) form.append("hidden", "true"); // GM only: on the GM layer, players never see it
    return request("POST", `/api/rooms/${encodeURIComponent(roomId)}/assets`, { form });
  },
  setAssetHidden: (assetId, hidden) => request("PATCH", `/api/assets/${encodeURIComponent(assetId)}`, { json: { hidden } }),
  deleteAsset: (assetId) => request("DELETE", `/api/assets/${encodeURIComponent(assetId)}`),
};
