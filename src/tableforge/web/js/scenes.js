// The scene list. A GM sees every scene: views any of them, creates, renames, removes, sets the
// map, and moves the players to one ("players' scene", marked). Players and spectators see only
// the scene they are on; when the GM moves them, their board changes by itself (scenestate.js).

import { describeError, h, toast } from "./util.js";

export class ScenesPanel {
  constructor({ state, socket }) {
    this.state = state;
    this.socket = socket;
    this.renaming = null; // the scene id being renamed
    this.list = h("ul", { class: "scene-list", id: "scene-list" });
    this.current = h("p", { class: "scene-current", id: "scene-current" });
    this.nameInput = h("input", { id: "scene-new-name", maxlength: "100", placeholder: "Cave entrance", autocomplete: "off" });
    const add = h("button", { type: "submit", class: "secondary", id: "scene-create" }, "Add scene");
    this.createForm = h("form", { class: "scene-create", "aria-label": "Add a scene" },
      h("label", { for: "scene-new-name", class: "visually-hidden" }, "New scene name"), this.nameInput, add);
    this.createForm.addEventListener("submit", (e) => {
      e.preventDefault();
      this.create();
    });
    this.clearMap = h("button", { type: "button", class: "secondary", id: "scene-clear-map", hidden: true }, "Remove the map");
    this.clearMap.addEventListener("click", () => this.update(this.state.sceneId, { map_asset_id: null }));
    this.el = h("section", { class: "panel panel-scenes", id: "scenes-panel", "aria-labelledby": "scenes-title" },
      h("h3", { id: "scenes-title" }, "Scenes"), this.current, this.list, this.clearMap, this.createForm);
    for (const topic of ["scenes", "scene", "room"]) state.on(topic, () => this.render());
    this.render();
  }

  _ask(type, payload, asEvent) {
    return this.socket.request(type, payload, { asEvent }).catch((err) => {
      toast(err.code === "scene_in_use" ? "The players are on that scene: move them to another one first."
        : err.code === "too_many_scenes" ? "A room holds at most 100 scenes." : describeError(err));
      throw err;
    });
  }

  async create() {
    const name = this.nameInput.value.trim() || `Scene ${this.state.scenes.size + 1}`;
    const me = this.state.me.id;
    try {
      const ack = await this._ask("scene.create", { name }, (a) => a.scene && { type: "scene.added", scene: a.scene, by: me });
      this.nameInput.value = "";
      if (ack.scene) await this.view(ack.scene.id); // a new scene is made to be prepared: show it
    } catch {
      // said in a toast
    }
  }

  update(sceneId, changes) {
    const me = this.state.me.id;
    return this._ask("scene.update", { scene_id: sceneId, ...changes },
      (a) => a.scene && { type: "scene.updated", scene: a.scene, by: me }).catch(() => null);
  }

  async remove(scene) {
    if (!window.confirm(`Remove the scene "${scene.name}" and every token on it?`)) return;
    const me = this.state.me.id;
    try {
      await this._ask("scene.remove", { scene_id: scene.id }, () => ({ type: "scene.removed", scene_id: scene.id, by: me }));
    } catch {
      // said in a toast
    }
  }

  async activate(scene) {
    const me = this.state.me.id;
    try {
      await this._ask("scene.activate", { scene_id: scene.id }, () => ({ type: "scene.activated", scene_id: scene.id, by: me }));
      toast(`The players are now on "${scene.name}".`, "info");
    } catch {
      // said in a toast
    }
  }

  async view(sceneId) {
    if (sceneId === this.state.sceneId) return;
    try {
      await this.socket.viewScene(sceneId);
    } catch (err) {
      toast(describeError(err));
    }
  }

  render() {
    const state = this.state;
    const gm = state.isGm;
    const scene = state.scene;
    this.current.textContent = scene ? `${gm ? "Viewing" : "You are on"}: ${scene.name}` : "";
    this.createForm.hidden = !gm;
    this.clearMap.hidden = !gm || !scene?.map;
    this.list.hidden = !gm;
    if (!gm) return;
    const scenes = [...state.scenes.values()].sort((a, b) => (a.position ?? 0) - (b.position ?? 0) || a.name.localeCompare(b.name));
    const focusedId = document.activeElement?.closest?.(".scene-item")?.dataset.sceneId;
    const focusedRole = document.activeElement?.dataset?.role;
    this.list.replaceChildren(...scenes.map((s) => this._item(s)));
    if (focusedId && focusedRole) this.list.querySelector(`[data-scene-id="${focusedId}"] [data-role="${focusedRole}"]`)?.focus();
  }

  _item(s) {
    const state = this.state;
    const viewing = s.id === state.sceneId;
    const players = s.id === state.playersSceneId;
    const button = (label, role, aria, fn, cls = "secondary") => {
      const b = h("button", { type: "button", class: cls, "aria-label": aria, dataset: { role } }, label);
      b.addEventListener("click", fn);
      return b;
    };
    let name;
    if (this.renaming === s.id) {
      const input = h("input", { value: s.name, maxlength: "100", "aria-label": `New name for ${s.name}`, dataset: { role: "rename-input" } });
      const form = h("form", { class: "scene-rename" }, input,
        h("button", { type: "submit", class: "primary", dataset: { role: "rename-save" } }, "Save"),
        button("Cancel", "rename-cancel", "Keep the old name", () => {
          this.renaming = null;
          this.render();
        }));
      form.addEventListener("submit", async (e) => {
        e.preventDefault();
        const value = input.value.trim();
        this.renaming = null;
        if (value && value !== s.name) await this.update(s.id, { name: value });
        this.render();
      });
      input.addEventListener("keydown", (e) => {
        if (e.key === "Escape") {
          this.renaming = null;
          this.render();
        }
      });
      queueMicrotask(() => input.focus());
      name = form;
    } else {
      name = button(s.name, "view", viewing ? `${s.name} (you are viewing it)` : `View ${s.name}`, () => this.view(s.id), "link scene-name");
    }
    return h("li", { class: `scene-item${viewing ? " is-viewing" : ""}${players ? " is-players" : ""}`, dataset: { sceneId: s.id } },
      h("div", { class: "scene-line" }, name,
        viewing ? h("span", { class: "badge" }, "viewing") : null,
        players ? h("span", { class: "badge badge-players" }, "players here") : null),
      h("div", { class: "scene-actions" },
        players ? null : button("Move players here", "activate", `Move the players to ${s.name}`, () => this.activate(s)),
        button("Rename", "rename", `Rename ${s.name}`, () => {
          this.renaming = s.id;
          this.render();
        }),
        this._removeButton(s, players, button)));
  }

  _removeButton(s, players, button) {
    const b = button("Remove", "remove", players ? `${s.name} is the players' scene: move them to another first` : `Remove ${s.name}`,
      () => this.remove(s), "danger");
    b.disabled = players; // the server refuses it too (409 scene_in_use)
    return b;
  }
}
