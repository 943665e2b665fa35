// Form controls generated from the OpenAPI schema the API serves: its titles, defaults,
// bounds and descriptions, so the forms follow the API without being edited.
import { BASE } from "./api.js";
import { field, h, options } from "./ui.js";

// The multipart form schema of POST `path` from /openapi.json, $refs resolved.
export async function formSchema(path) {
  const spec = await (await fetch(`${BASE}/openapi.json`)).json();
  let schema = spec.paths[path].post.requestBody.content["multipart/form-data"].schema;
  const resolve = (s) => (s.$ref ? spec.components.schemas[s.$ref.split("/").pop()] : s);
  schema = resolve(schema);
  for (const [key, prop] of Object.entries(schema.properties)) schema.properties[key] = resolve(prop);
  return schema;
}

export function describe(prop) {
  const def = prop.default === undefined ? "" : ` Default: ${JSON.stringify(prop.default)}.`;
  return `${(prop.description || "").replace(/`/g, "")}${def}`;
}

// One form control for a schema property; .values() the form values to send (none when the
// default is kept, so the API fills in its own).
export function control(key, prop) {
  const label = prop.title || key;
  const hint = describe(prop);
  let wrap;
  if (prop.type === "boolean") {
    wrap = field(label, h("input", { type: "checkbox", name: key, checked: Boolean(prop.default) }), hint);
    wrap.classList.add("check");
    wrap.values = () => (wrap.control.checked === Boolean(prop.default) ? [] : [String(wrap.control.checked)]);
  } else if (prop.type === "array" && prop.items?.enum) {
    const select = h("select", { name: key, multiple: true, size: Math.min(prop.items.enum.length, 5) });
    options(select, prop.items.enum);
    for (const o of select.options) o.selected = (prop.default || []).includes(o.value);
    wrap = field(label, select, hint);
    const chosen = () => [...select.selectedOptions].map((o) => o.value);
    wrap.values = () => (JSON.stringify(chosen()) === JSON.stringify(prop.default || []) ? [] : chosen());
  } else if (prop.enum) {
    const select = h("select", { name: key });
    options(select, [...(prop.default === undefined ? [""] : []), ...prop.enum]);
    if (prop.default !== undefined) select.value = prop.default;
    else select.options[0].textContent = "(API default)";
    wrap = field(label, select, hint);
    wrap.values = () => (select.value === "" || select.value === prop.default ? [] : [select.value]);
  } else {
    const numeric = prop.type === "integer" || prop.type === "number";
    const input = h("input", {
      type: numeric ? "number" : "text",
      name: key,
      step: prop.type === "integer" ? 1 : "any",
      min: prop.minimum,
      max: prop.maximum,
      value: typeof prop.default === "object" ? "" : prop.default,
      placeholder: prop.default === undefined ? "API default" : "",
    });
    wrap = field(label, input, hint);
    wrap.values = () => {
      const v = input.value.trim();
      return v === "" || v === String(prop.default ?? "") ? [] : [v];
    };
  }
  wrap.key = key;
  return wrap;
}
