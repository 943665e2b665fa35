// Fine-tune: training files (or a generated dataset), the hyperparameter form generated from
// the OpenAPI schema of POST /fine_tune_model (defaults and descriptions), every validation
// problem shown at once; a started job opens its live view (#job/ID).
import { getJson, upload } from "../api.js";
import { formSchema, describe, control } from "../schema.js";
import { NAME_RULES, announce, errorBox, field, h, nameProblem, options } from "../ui.js";

const OWN = new Set(["model_name", "base_model", "system_prompt", "train_file", "eval_file", "dataset_id"]);

export async function finetunePage(main, arg) {
  const [schema, models] = await Promise.all([formSchema("/fine_tune_model"), getJson("/listModels")]);
  const dataset = new URLSearchParams(arg).get("dataset") || "";
  const name = field("New model name", h("input", { type: "text", name: "model_name", autocomplete: "off", required: true }), NAME_RULES);
  name.control.addEventListener("input", () => name.error(nameProblem(name.control.value)));
  const base = field("Base model", h("select", { name: "base_model" }), describe(schema.properties.base_model));
  options(
    base.control,
    models.data.filter((m) => m.kind === "base").map((m) => m.name),
    schema.properties.base_model.default,
  );
  const system = field("System prompt", h("textarea", { name: "system_prompt", rows: 2 }), describe(schema.properties.system_prompt));
  const train = field("Training file", h("input", { type: "file", name: "train_file", accept: ".csv,.json,.jsonl" }), "CSV, JSON or JSONL with question and answer columns.");
  const evalFile = field("Evaluation file (optional)", h("input", { type: "file", name: "eval_file", accept: ".csv,.json,.jsonl" }), "Without one, a share of the training rows is held out.");
  const datasetId = field("Or a generated dataset", h("input", { type: "text", name: "dataset_id", value: dataset }), "A dataset id from the Datasets page, instead of a training file.");
  const params = Object.entries(schema.properties)
    .filter(([key]) => !OWN.has(key))
    .map(([key, prop]) => control(key, prop));
  const bar = h("progress", { max: 100, value: 0, hidden: true, "aria-label": "Upload" });
  const problems = h("div");
  const submit = h("button", { type: "submit" }, "Start fine-tuning");
  const form = h(
    "form",
    { onsubmit: (e) => (e.preventDefault(), start()) },
    h("div", { class: "grid" }, name, base, train, evalFile, datasetId),
    system,
    h("details", {}, h("summary", {}, "Hyperparameters"), h("div", { class: "grid params" }, params)),
    h("div", { class: "actions" }, submit),
    bar,
    problems,
  );
  main.append(h("h1", {}, "Fine-tune"), h("section", { class: "card" }, form));

  async function start() {
    problems.replaceChildren();
    for (const p of [name, ...params]) p.error("");
    const body = new FormData();
    body.append("model_name", name.control.value);
    body.append("base_model", base.control.value);
    if (system.control.value.trim()) body.append("system_prompt", system.control.value);
    if (train.control.files[0]) body.append("train_file", train.control.files[0]);
    if (evalFile.control.files[0]) body.append("eval_file", evalFile.control.files[0]);
    if (datasetId.control.value.trim()) body.append("dataset_id", datasetId.control.value.trim());
    for (const p of params) for (const value of p.values()) body.append(p.key, value);
    submit.disabled = true;
    bar.hidden = false;
    announce("Uploading and validating…");
    try {
      const job = await upload("/fine_tune_model", body, (sent, total) => (bar.value = (100 * sent) / total));
      announce(`Job ${job.id} started.`);
      location.hash = `#job/${job.id}`;
    } catch (error) {
      problems.replaceChildren(errorBox(error));
      for (const p of [name, ...params]) {
        const key = p.key || "model_name";
        const said = (error.errors || []).find((e) => e.startsWith(`${key}:`));
        if (said) p.error(said);
      }
      announce(`Not started: ${error.detail}`);
    } finally {
      submit.disabled = false;
      bar.hidden = true;
    }
  }
}
