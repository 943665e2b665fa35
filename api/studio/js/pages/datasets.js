// Datasets: generate pairs from seed examples or a model's documents (form from the OpenAPI
// schema), follow the generation, preview kept pairs and drop counts, download, fine-tune on it.
import { download, events, getJson, upload } from "../api.js";
import { control, describe, formSchema } from "../schema.js";
import { announce, errorBox, field, h, options, table, when } from "../ui.js";

const OWN = new Set(["seed_file", "model", "documents", "teacher"]);

export async function datasetsPage(main, id) {
  if (id) return datasetView(main, id);
  const [schema, models, datasets] = await Promise.all([
    formSchema("/datasets/generate"),
    getJson("/listModels"),
    getJson("/datasets"),
  ]);
  const names = models.data.map((m) => m.name);
  const teacher = field("Teacher model", h("select", { name: "teacher" }), describe(schema.properties.teacher));
  options(teacher.control, names);
  const seeds = field("Seed file", h("input", { type: "file", name: "seed_file", accept: ".csv,.jsonl,.json" }), describe(schema.properties.seed_file));
  const model = field("Or: documents of model", h("select", { name: "model" }), describe(schema.properties.model));
  options(model.control, ["", ...names]);
  model.control.options[0].textContent = "(use the seed file)";
  const params = Object.entries(schema.properties)
    .filter(([key]) => !OWN.has(key))
    .map(([key, prop]) => control(key, prop));
  const problems = h("div");
  const form = h(
    "form",
    { onsubmit: (e) => (e.preventDefault(), start()) },
    h("div", { class: "grid" }, teacher, seeds, model),
    h("details", {}, h("summary", {}, "Settings"), h("div", { class: "grid" }, params)),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Generate")),
    problems,
  );
  main.append(
    h("h1", {}, "Datasets"),
    h("section", { class: "card" }, h("h2", {}, "Generate a dataset"), form),
    h(
      "section",
      { class: "card" },
      h("h2", {}, "Datasets"),
      datasets.data.length
        ? table(
            ["Dataset", "State", "Source", "Teacher", "Pairs", "Created"],
            datasets.data.map((d) =>
              h(
                "tr",
                {},
                h("td", {}, h("a", { href: `#datasets/${d.id}` }, d.id)),
                h("td", {}, d.status),
                h("td", {}, d.source || ""),
                h("td", {}, d.teacher),
                h("td", {}, `${d.rows}/${d.requested}`),
                h("td", {}, when(d.created_at)),
              ),
            ),
          )
        : h("p", {}, "No datasets yet."),
    ),
  );

  async function start() {
    problems.replaceChildren();
    const body = new FormData();
    body.append("teacher", teacher.control.value);
    if (seeds.control.files[0]) body.append("seed_file", seeds.control.files[0]);
    if (model.control.value) body.append("model", model.control.value);
    for (const p of params) for (const value of p.values()) body.append(p.key, value);
    try {
      const job = await upload("/datasets/generate", body, () => {});
      announce(`Generating dataset ${job.id}.`);
      location.hash = `#datasets/${job.id}`;
    } catch (error) {
      problems.replaceChildren(errorBox(error));
      announce(`Not started: ${error.detail}`);
    }
  }
}

async function datasetView(main, id) {
  const path = `/datasets/${encodeURIComponent(id)}`;
  const state = h("p", { class: "dataset-state" }, "");
  const log = h("ol", { class: "events", "aria-label": "Events" });
  const body = h("div");
  main.append(
    h("h1", {}, `Dataset ${id}`),
    h("section", { class: "card" }, state, body),
    h("section", { class: "card" }, h("h2", {}, "Events"), log),
  );
  const abort = new AbortController();

  async function render() {
    const d = await getJson(path);
    state.textContent = `${d.status}: ${d.rows} of ${d.requested} pairs kept (${d.source || ""}, teacher ${d.teacher})`;
    const drops = Object.entries(d.dropped || {});
    const finished = d.status === "succeeded";
    body.replaceChildren(
      d.error ? errorBox({ detail: d.error }) : "",
      drops.length ? table(["Dropped by", "Count"], drops.map(([k, v]) => h("tr", {}, h("td", {}, k), h("td", {}, String(v))))) : "",
      d.report ? h("pre", { class: "report" }, d.report) : "",
      d.samples?.length
        ? h("div", { class: "preview" }, h("h2", {}, "Preview"), table(Object.keys(d.samples[0]), d.samples.map((s) => h("tr", {}, Object.values(s).map((v) => h("td", {}, typeof v === "string" ? v : JSON.stringify(v)))))))
        : "",
      h(
        "div",
        { class: "actions" },
        h("button", { class: "secondary", disabled: !finished, onclick: () => download(`${path}/download?format=jsonl`, `${id}.jsonl`) }, "Download JSONL"),
        h("button", { class: "secondary", disabled: !finished, onclick: () => download(`${path}/download?format=csv`, `${id}.csv`) }, "Download CSV"),
        finished ? h("a", { href: `#finetune/dataset=${encodeURIComponent(id)}` }, "Fine-tune on this") : "",
      ),
    );
  }

  (async () => {
    await render();
    try {
      for await (const e of events(`/jobs/${encodeURIComponent(id)}/events`, abort.signal)) {
        log.append(h("li", {}, `${e.type}: ${e.message}`));
        announce(e.message);
      }
      await render();
    } catch (error) {
      if (!abort.signal.aborted) body.append(errorBox(error));
    }
  })();
  return () => abort.abort();
}
