// Documents: per model, upload PDFs (a progress bar each), list, delete one or all; the API's
// reason when an import fails.
import { call, getJson, upload } from "../api.js";
import { announce, bytes, errorBox, field, h, options, table, when } from "../ui.js";

export async function documentsPage(main, wanted) {
  const models = (await getJson("/listModels")).data.map((m) => m.name);
  const model = field("Model", h("select", { name: "model" }));
  options(model.control, models, wanted);
  const files = field("PDF files", h("input", { type: "file", name: "file", accept: "application/pdf,.pdf", multiple: true }));
  const uploads = h("div", { class: "uploads" });
  const list = h("div");
  const listError = h("div");
  const form = h(
    "form",
    { onsubmit: (e) => (e.preventDefault(), importAll()) },
    h("div", { class: "grid" }, model, files),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Import")),
    uploads,
  );
  const deleteAll = h("button", { class: "danger", onclick: () => removeAll() }, "Delete all documents");
  main.append(
    h("h1", {}, "Documents"),
    h("section", { class: "card" }, h("h2", {}, "Import PDFs"), form),
    h("section", { class: "card" }, h("h2", {}, "Imported"), listError, list, h("div", { class: "actions" }, deleteAll)),
  );
  model.control.addEventListener("change", refresh);

  async function refresh() {
    const name = model.control.value;
    if (!name) return list.replaceChildren(h("p", {}, "No model yet: create one on the Models page."));
    const docs = (await getJson(`/listDocuments?model=${encodeURIComponent(name)}`)).data;
    deleteAll.disabled = !docs.length;
    list.replaceChildren(
      docs.length
        ? table(
            ["Document", "Pages", "Chunks", "Size", "Imported", ""],
            docs.map((d) =>
              h(
                "tr",
                { "data-document": d.name },
                h("td", {}, d.name),
                h("td", {}, String(d.pages)),
                h("td", {}, String(d.chunks)),
                h("td", {}, bytes(d.size)),
                h("td", {}, when(d.imported_at)),
                h("td", {}, h("button", { class: "danger", onclick: () => remove(d.name) }, `Delete ${d.name}`)),
              ),
            ),
          )
        : h("p", {}, `${name} has no documents.`),
    );
  }

  async function importAll() {
    const name = model.control.value;
    uploads.replaceChildren();
    for (const file of files.control.files) {
      const bar = h("progress", { max: 100, value: 0, "aria-label": `Uploading ${file.name}` });
      const state = h("span", {}, "uploading…");
      const row = h("div", { class: "upload", "data-file": file.name }, h("div", {}, `${file.name}: `, state), bar);
      uploads.append(row);
      const form = new FormData();
      form.append("file", file);
      form.append("model", name);
      try {
        const done = await upload("/importDocument", form, (sent, total) => {
          bar.value = Math.round((100 * sent) / total);
          if (sent === total) state.textContent = "reading and indexing…";
        });
        bar.value = 100;
        state.textContent = `imported: ${done.pages} pages, ${done.chunks} chunks${done.replaced ? " (replaced)" : ""}`;
        state.className = "ok";
        announce(`Imported ${file.name}.`);
      } catch (error) {
        state.textContent = "not imported";
        state.className = "bad";
        row.append(errorBox(error));
        announce(`${file.name} was not imported: ${error.detail}`);
      }
    }
    files.control.value = "";
    await refresh();
  }

  async function remove(doc) {
    if (!confirm(`Delete ${doc}?`)) return;
    await act(`/deleteDocument?model=${encodeURIComponent(model.control.value)}&document=${encodeURIComponent(doc)}`, `Deleted ${doc}.`);
  }

  async function removeAll() {
    if (!confirm(`Delete every document of ${model.control.value}?`)) return;
    await act(`/deleteAllDocuments?model=${encodeURIComponent(model.control.value)}`, "Deleted all documents.");
  }

  async function act(path, said) {
    listError.replaceChildren();
    try {
      await call(path, { method: "DELETE" });
      announce(said);
    } catch (error) {
      listError.replaceChildren(errorBox(error));
    }
    await refresh();
  }

  await refresh();
}
