// The images panel: upload an image and place it (as a token, a map token, or, for a GM, the
// scene's map), and the room's library. A GM may upload an image hidden and hide or reveal an
// image later: players never receive a hidden image, nor the tokens that show it.
// Spectators cannot upload (the server refuses it), so they do not get the panel.

import { api } from "./api.js";
import { describeError, h, toast } from "./util.js";

export class ImagesPanel {
  constructor({ roomId, user, state, board, scenes }) {
    this.roomId = roomId;
    this.user = user;
    this.state = state;
    this.board = board;
    this.scenes = scenes;
    this.openedOnce = false;
    this.fileInput = h("input", { type: "file", id: "upload-file", name: "file", accept: "image/png,image/jpeg,image/webp,image/gif", required: true });
    this.nameInput = h("input", { id: "upload-name", name: "name", maxlength: "200", placeholder: "Goblin, Tavern map…" });
    this.asToken = h("input", { type: "radio", name: "use", value: "token", id: "use-token", checked: true });
    this.asMap = h("input", { type: "radio", name: "use", value: "map", id: "use-map" });
    this.asScene = h("input", { type: "radio", name: "use", value: "scene", id: "use-scene-map" });
    this.sceneChoice = h("span", { hidden: true }, this.asScene, h("label", { for: "use-scene-map" }, "this scene's map (fog covers it)"));
    this.hidden = h("input", { type: "checkbox", id: "upload-hidden" });
    this.hiddenChoice = h("div", { class: "field check-field", hidden: true },
      h("label", { class: "check", for: "upload-hidden" }, this.hidden, "Hide this image from the players (GM layer)"));
    this.uploadButton = h("button", { type: "submit", class: "primary", id: "upload-button" }, "Upload and place");
    this.uploadError = h("p", { class: "form-error", role: "alert" });
    this.form = h("form", { class: "upload-form", "aria-label": "Upload an image" },
      h("div", { class: "field" }, h("label", { for: "upload-file" }, "Image (PNG, JPEG, WebP or GIF)"), this.fileInput),
      h("div", { class: "field" }, h("label", { for: "upload-name" }, "Name (optional)"), this.nameInput),
      h("fieldset", { class: "inline" }, h("legend", {}, "Place it as"),
        h("span", {}, this.asToken, h("label", { for: "use-token" }, "a token")),
        h("span", {}, this.asMap, h("label", { for: "use-map" }, "a map token (under the tokens)")),
        this.sceneChoice),
      this.hiddenChoice,
      this.uploadError,
      h("div", { class: "actions" }, this.uploadButton));
    this.library = h("ul", { class: "library", id: "library" });
    this.el = h("details", { class: "panel panel-images", id: "images-panel", open: true },
      h("summary", {}, h("h3", { id: "images-title" }, "Images: upload, place as token or map")), this.form, this.library);
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.upload();
    });
    state.on("assets", () => this.render());
    state.on("room", () => this.render());
    state.on("gm-layer", () => {
      this.hidden.checked = board.newHidden;
    });
  }

  async upload() {
    const { state, board } = this;
    this.uploadError.textContent = "";
    const file = this.fileInput.files && this.fileInput.files[0];
    if (!file) {
      this.uploadError.textContent = "Choose an image file first.";
      return;
    }
    this.uploadButton.disabled = true;
    this.uploadButton.textContent = "Uploading…";
    try {
      const hidden = state.isGm && this.hidden.checked;
      const asset = await api.uploadAsset(this.roomId, file, this.nameInput.value.trim() || file.name.replace(/\.[^.]+$/, ""), { hidden });
      if (!state.assets.has(asset.id)) {
        state.assets.set(asset.id, asset);
        state.emit("assets");
      }
      if (state.isGm && this.asScene.checked) await this.scenes.update(state.sceneId, { map_asset_id: asset.id });
      else await board.place(asset, { asMap: this.asMap.checked });
      this.form.reset();
      this.hidden.checked = board.newHidden;
    } catch (err) {
      this.uploadError.textContent = describeError(err);
    } finally {
      this.uploadButton.disabled = false;
      this.uploadButton.textContent = "Upload and place";
    }
  }

  async setHidden(asset, hidden) {
    try {
      const updated = await api.setAssetHidden(asset.id, hidden);
      this.state.assets.set(asset.id, { ...asset, ...updated });
      this.state.emit("assets");
    } catch (err) {
      toast(describeError(err));
    }
  }

  render() {
    const { state, board } = this;
    this.el.hidden = state.isSpectator;
    this.sceneChoice.hidden = !state.isGm;
    this.hiddenChoice.hidden = !state.isGm;
    const assets = [...state.assets.values()];
    if (!this.openedOnce && state.room) {
      this.openedOnce = true; // open at first only on an empty board; then it is the person's choice
      this.el.open = state.tokens.size === 0 && !state.scene?.map;
    }
    const button = (label, aria, fn, cls = "secondary") => {
      const b = h("button", { type: "button", class: cls, "aria-label": aria }, label);
      b.addEventListener("click", fn);
      return b;
    };
    const fail = (err) => toast(describeError(err));
    this.library.replaceChildren(...assets.map((asset) => {
      const actions = [
        button("Token", `Place ${asset.name} as a token`, () => board.place(asset).catch(fail)),
        button("Map", `Place ${asset.name} as a map token`, () => board.place(asset, { asMap: true }).catch(fail)),
      ];
      if (state.isGm) {
        actions.push(button("Scene map", `Make ${asset.name} the map of the scene you view`,
          () => this.scenes.update(state.sceneId, { map_asset_id: asset.id })));
        actions.push(button(asset.hidden ? "Reveal" : "Hide",
          asset.hidden ? `Reveal ${asset.name} and its tokens to the players` : `Hide ${asset.name} and its tokens from the players`,
          () => this.setHidden(asset, !asset.hidden)));
      }
      if (state.isGm || asset.uploader_id === this.user.id) {
        actions.push(button("Delete", `Delete ${asset.name} and its tokens`, async () => {
          if (!window.confirm(`Delete ${asset.name} and every token that shows it?`)) return;
          try {
            await api.deleteAsset(asset.id);
          } catch (err) {
            fail(err);
          }
        }, "danger"));
      }
      return h("li", { class: `library-item${asset.hidden ? " is-hidden" : ""}`, dataset: { assetId: asset.id } },
        h("img", { src: asset.url, alt: "", loading: "lazy", width: "40", height: "40" }),
        h("span", { class: "library-name" }, asset.name, asset.hidden ? h("span", { class: "badge badge-hidden" }, "hidden") : null),
        h("span", { class: "library-actions" }, ...actions));
    }));
    if (!assets.length) this.library.append(h("li", { class: "muted" }, "No images yet."));
  }
}
