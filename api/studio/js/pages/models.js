// Models: bases and variants, create a variant (name rules as you type, the API's 422 at the
// field), delete one after confirming (the API's 409 reason shown).
import { call, getJson } from "../api.js";
import { NAME_RULES, announce, errorBox, field, h, nameProblem, options, table, when } from "../ui.js";

export async function modelsPage(main) {
  const list = h("div");
  const listError = h("div");
  const name = field("Name", h("input", { type: "text", name: "name", autocomplete: "off" }), NAME_RULES);
  const base = field("Base model", h("select", { name: "base_model" }));
  const system = field("System prompt", h("textarea", { name: "system_prompt", rows: 3 }));
  const formError = h("div");
  const form = h(
    "form",
    { class: "create", onsubmit: (e) => (e.preventDefault(), create()) },
    h("div", { class: "grid" }, name, base),
    system,
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Create variant")),
    formError,
  );
  main.append(
    h("h1", {}, "Models"),
    h("section", { class: "card" }, h("h2", {}, "Bases and variants"), listError, list),
    h("section", { class: "card" }, h("h2", {}, "New variant"), form),
  );
  name.control.addEventListener("input", () => name.error(nameProblem(name.control.value)));

  async function refresh() {
    const models = (await getJson("/listModels")).data;
    options(
      base.control,
      models.map((m) => m.name),
      base.control.value,
    );
    list.replaceChildren(
      table(
        ["Name", "Kind", "Base", "System prompt", "Source / lineage", "Created", ""],
        models.map((m) =>
          h(
            "tr",
            { "data-model": m.name },
            h("td", {}, h("a", { href: `#playground/${encodeURIComponent(m.name)}` }, m.name)),
            h("td", {}, m.kind),
            h("td", {}, m.base_model || ""),
            h("td", {}, m.system_prompt || ""),
            h("td", {}, lineage(m)),
            h("td", {}, when(m.created_at)),
            h("td", {}, m.kind === "base" ? "" : h("button", { class: "danger", onclick: () => remove(m.name) }, `Delete ${m.name}`)),
          ),
        ),
      ),
    );
  }

  async function create() {
    formError.replaceChildren();
    name.error(nameProblem(name.control.value));
    const body = { name: name.control.value, base_model: base.control.value };
    if (system.control.value.trim()) body.system_prompt = system.control.value;
    try {
      await call("/createModel", { method: "POST", json: body });
    } catch (error) {
      if (error.status === 422 && /\bname\b/.test(error.detail)) name.error(error.detail);
      else formError.replaceChildren(errorBox(error));
      announce(`Not created: ${error.detail}`);
      return;
    }
    announce(`Created ${body.name}.`);
    form.reset();
    name.error("");
    await refresh();
  }

  async function remove(model) {
    if (!confirm(`Delete ${model} and its documents?`)) return;
    listError.replaceChildren();
    try {
      await call(`/deleteModel?name=${encodeURIComponent(model)}`, { method: "DELETE" });
      announce(`Deleted ${model}.`);
    } catch (error) {
      listError.replaceChildren(errorBox(error));
      announce(`Not deleted: ${error.detail}`);
    }
    await refresh();
  }

  await refresh();
}

function lineage(m) {
  const parts = [m.source, m.ollama_model && `ollama: ${m.ollama_model}`];
  if (m.template) parts.push("custom template");
  const params = Object.entries(m.parameters || {}).map(([k, v]) => `${k}=${v}`);
  if (params.length) parts.push(params.join(", "));
  return parts.filter(Boolean).join("; ");
}
