// Jobs: every job with its state and progress; one job's live view (#job/ID) from its event
// stream: loss curves, step/total, tokens/s, ETA, cancel; at the end its metrics and export.
// The URL names the job, so a reload reconnects to the stream (which replays from the start).
import { call, events, getJson } from "../api.js";
import { LossChart } from "../chart.js";
import { announce, errorBox, h, seconds, table, when } from "../ui.js";

const ENDED = ["succeeded", "failed", "cancelled"];

export async function jobsPage(main) {
  const jobs = (await getJson("/jobs")).data;
  main.append(
    h("h1", {}, "Jobs"),
    h(
      "section",
      { class: "card" },
      jobs.length
        ? table(
            ["Job", "Kind", "Model", "State", "Progress", "Created"],
            jobs.map((j) =>
              h(
                "tr",
                { "data-job": j.id },
                h("td", {}, h("a", { href: `#job/${j.id}` }, j.id)),
                h("td", {}, j.kind),
                h("td", {}, j.model_name || ""),
                h("td", {}, j.status),
                h("td", {}, progressText(j.progress)),
                h("td", {}, when(j.created_at)),
              ),
            ),
          )
        : h("p", {}, "No jobs yet: start one on the Fine-tune or Datasets page."),
    ),
  );
}

function progressText(p = {}) {
  if (p.total_steps) return `step ${p.step}/${p.total_steps}`;
  if (p.requested) return `${p.rows ?? 0}/${p.requested} pairs`;
  return "";
}

export async function jobPage(main, id) {
  const job = await getJson(`/jobs/${encodeURIComponent(id)}`);
  const state = h("dd", { class: "job-state" }, job.status);
  const step = h("dd", { class: "job-step" }, "");
  const speed = h("dd", {}, "");
  const eta = h("dd", {}, "");
  const bar = h("progress", { max: 1, value: 0, "aria-label": "Training progress" });
  const cancel = h("button", { class: "danger", onclick: () => stop() }, "Cancel job");
  const log = h("ol", { class: "events", "aria-label": "Events" });
  const result = h("div", { class: "result" });
  const chartBox = h("div", { class: "chart" });
  main.append(
    h("h1", {}, `Job ${job.id}`),
    h(
      "section",
      { class: "card" },
      h("p", {}, `${job.kind} → ${job.model_name || ""} (base ${job.base_model || ""})`),
      h(
        "dl",
        { class: "stats" },
        h("div", {}, h("dt", {}, "State"), state),
        h("div", {}, h("dt", {}, "Step"), step),
        h("div", {}, h("dt", {}, "Tokens/s"), speed),
        h("div", {}, h("dt", {}, "ETA"), eta),
      ),
      bar,
      h("div", { class: "actions" }, cancel),
    ),
    h("section", { class: "card" }, h("h2", {}, "Loss"), chartBox),
    h("section", { class: "card" }, h("h2", {}, "Result"), result),
    h("section", { class: "card" }, h("h2", {}, "Events"), log),
  );
  const chart = new LossChart(chartBox);
  const abort = new AbortController();

  function update(p = {}) {
    if (p.total_steps) {
      step.textContent = `${p.step}/${p.total_steps}`;
      bar.max = p.total_steps;
      bar.value = p.step;
    }
    if (p.tokens_per_second !== undefined) speed.textContent = String(p.tokens_per_second);
    if (p.eta_seconds !== undefined) eta.textContent = seconds(p.eta_seconds);
  }

  async function stop() {
    if (!confirm(`Cancel job ${job.id}?`)) return;
    try {
      await call(`/jobs/${job.id}/cancel`, { method: "POST" });
      announce("Cancel requested.");
    } catch (error) {
      result.replaceChildren(errorBox(error));
    }
  }

  async function follow() {
    try {
      for await (const e of events(`/jobs/${encodeURIComponent(job.id)}/events`, abort.signal)) {
        const d = e.data || {};
        if (e.type === "progress" && d.loss !== undefined) chart.add(d.step, "loss", d.loss);
        if (e.type === "eval" && d.eval_loss !== undefined) chart.add(d.step, "evalLoss", d.eval_loss);
        update(d);
        if (e.type !== "progress") {
          state.textContent = e.type;
          announce(e.message);
        }
        log.append(h("li", {}, `${new Date(e.created_at).toLocaleTimeString()} ${e.type}: ${e.message}`));
      }
    } catch (error) {
      if (abort.signal.aborted) return;
      result.replaceChildren(errorBox(error));
    }
    await finish();
  }

  async function finish() {
    const done = await getJson(`/jobs/${encodeURIComponent(job.id)}`);
    state.textContent = done.status;
    update(done.progress);
    cancel.disabled = ENDED.includes(done.status);
    if (!ENDED.includes(done.status)) return;
    announce(`Job ${done.status}.`);
    result.replaceChildren(...(await outcome(done)));
  }

  cancel.disabled = ENDED.includes(job.status);
  follow();
  return () => abort.abort();
}

async function outcome(job) {
  const parts = [h("p", { class: `job-outcome ${job.status === "succeeded" ? "ok" : "bad"}` }, `Job ${job.status}.`)];
  if (job.error) parts.push(errorBox({ detail: job.error }));
  const m = job.metrics || {};
  const rows = [];
  const row = (k, v) => v !== undefined && v !== null && rows.push(h("tr", {}, h("th", { scope: "row" }, k), h("td", {}, String(v))));
  row("Eval loss before", m.eval_loss_before);
  row("Eval loss", m.eval_loss);
  row("Perplexity", m.perplexity);
  row("First / last training loss", m.train_loss_first !== undefined ? `${fmt(m.train_loss_first)} / ${fmt(m.train_loss_last)}` : undefined);
  row("Steps", m.steps);
  row("Device", m.device);
  for (const [side, scores] of Object.entries(m.rouge || {})) {
    if (scores && typeof scores === "object") row(`ROUGE (${side})`, Object.entries(scores).map(([k, v]) => `${k} ${fmt(v)}`).join(", "));
  }
  if (m.export) {
    row("Export", m.export.mode);
    row("Files", Object.values(m.export.files || {}).map((f) => f.split("/").pop()).join(", "));
    row("Smoke test reply", m.export.smoke_reply);
  }
  if (rows.length) parts.push(h("table", { class: "metrics" }, h("tbody", {}, rows)));
  if (job.kind === "dataset") parts.push(h("p", {}, h("a", { href: `#datasets/${job.id}` }, "Open the dataset")));
  else if (job.status === "succeeded") {
    const served = (await getJson("/listModels")).data.some((x) => x.name === job.model_name);
    parts.push(
      served
        ? h("p", {}, h("a", { class: "open-playground", href: `#playground/${encodeURIComponent(job.model_name)}` }, `Open ${job.model_name} in the playground`))
        : h("p", {}, "This job exported no served model (export: none)."),
    );
  }
  return parts;
}

function fmt(v) {
  return typeof v === "number" ? v.toFixed(4).replace(/\.?0+$/, "") : String(v);
}
