// Scenes and fog in the room state (roomstate.js): the scene on this page's board, the list of
// scenes a GM sees, and the events that change them (docs/protocol.md, "Scenes", "Fog of war").
//
// A player's board is always the players' scene: `scene.activated` brings the new one whole
// (scene and tokens) and replaces the board like a snapshot. A GM views one scene at a time
// (socket.js `viewScene`) and only learns that the players moved.

import { applyFogChange, fogged } from "./fog.js";

function summary(scene) {
  const { grid, fog, ...rest } = scene;
  return rest;
}

export function sceneFromSnapshot(state, snapshot) {
  state.scene = snapshot.scene || null;
  state.sceneId = snapshot.scene_id || snapshot.scene?.id || state.room?.players_scene_id || null;
  state.scenes = new Map((snapshot.scenes || []).map((s) => [s.id, summary(s)]));
  if (state.scene && !state.scenes.has(state.scene.id)) state.scenes.set(state.scene.id, summary(state.scene));
}

const fogCache = new WeakMap(); // fog object -> Map("x,y" -> fogged?): a fog is replaced, never changed

/** Is this token's centre under the fog of the scene on the board? */
export function tokenFogged(state, token) {
  const fog = state.scene?.fog;
  if (!token || !fog) return false;
  if (token.scene_id && token.scene_id !== state.sceneId) return false;
  // The GM's board asks for every token on every render: remember the answers for this fog.
  let known = fogCache.get(fog);
  if (!known) fogCache.set(fog, (known = new Map()));
  const key = `${token.x},${token.y}`;
  let result = known.get(key);
  if (result === undefined) {
    if (known.size > 5000) known.clear();
    result = fogged(fog, token.x, token.y);
    known.set(key, result);
  }
  return result;
}

function setPlayersScene(state, sceneId) {
  state.room = { ...(state.room || {}), players_scene_id: sceneId };
  state.emit("room", state.room);
}

/** Apply a scene or fog event; false when the event is not one of these. */
export function applySceneEvent(state, event) {
  switch (event.type) {
    case "room.skip":
      return true; // a version that carries nothing for this page
    case "scene.added":
      state.scenes.set(event.scene.id, summary(event.scene));
      state.emit("scenes");
      return true;
    case "scene.updated": {
      const scene = event.scene;
      state.scenes.set(scene.id, { ...(state.scenes.get(scene.id) || {}), ...summary(scene) });
      if (scene.id === state.sceneId) {
        // an update may come as a summary: keep the grid and fog we have unless it brings them
        state.scene = { ...(state.scene || {}), ...scene };
        state.emit("scene", { switched: false });
      }
      state.emit("scenes");
      return true;
    }
    case "scene.removed":
      state.scenes.delete(event.scene_id);
      state.emit("scenes");
      if (event.scene_id === state.sceneId) {
        // the scene on our board is gone (and its tokens with it); room.js views another one
        state.tokens.clear();
        state.emit("tokens", { reset: true });
        state.emit("scene-removed", { sceneId: event.scene_id });
      }
      return true;
    case "scene.activated":
      if (event.scene && !state.isGm) {
        // players: the new board, whole, like a snapshot
        state.scene = event.scene;
        state.sceneId = event.scene_id;
        state.scenes = new Map([[event.scene.id, summary(event.scene)]]);
        state.tokens = new Map();
        for (const token of event.tokens || []) state.tokens.set(token.id, token);
        setPlayersScene(state, event.scene_id);
        state.emit("scenes");
        state.emit("scene", { switched: true, moved: true });
        state.emit("tokens", { reset: true, switched: true });
      } else {
        setPlayersScene(state, event.scene_id);
        state.emit("scenes");
      }
      return true;
    case "fog.changed": {
      if (event.scene_id !== state.sceneId || !state.scene) return true;
      state.scene = { ...state.scene, fog: applyFogChange(state.scene.fog, event.op, event.shape) };
      // players: the tokens the change uncovered (whole) and the ones it covered
      for (const token of event.tokens_added || []) state.tokens.set(token.id, token);
      for (const id of event.tokens_removed || []) state.tokens.delete(id);
      state.emit("fog");
      state.emit("tokens", { reset: true });
      return true;
    }
    default:
      return false;
  }
}
