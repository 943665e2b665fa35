// Playground: a streamed chat (/v1/chat/completions) with sampling options, answers from a
// model's documents with their sources, and side by side: the same prompt to two models.
import { call, getJson, lines } from "../api.js";
import { announce, errorBox, field, h, options } from "../ui.js";

export async function playgroundPage(main, wanted) {
  const models = (await getJson("/listModels")).data.map((m) => m.name);
  const first = field("Model", h("select", { name: "model" }));
  const compare = field("Side by side with a second model", h("input", { type: "checkbox", name: "compare" }));
  compare.classList.add("check");
  const second = field("Second model", h("select", { name: "model2" }));
  options(first.control, models, wanted);
  options(second.control, models, models.find((m) => m !== first.control.value));
  second.hidden = true;

  const num = (label, name, attrs, hint) => field(label, h("input", { type: "number", name, ...attrs }), hint);
  const temperature = num("Temperature", "temperature", { min: 0, max: 2, step: 0.05, placeholder: "model default" });
  const topP = num("Top p", "top_p", { min: 0, max: 1, step: 0.05, placeholder: "model default" });
  const maxTokens = num("Max tokens", "max_tokens", { min: 1, step: 1, value: 128 });
  const seed = num("Seed", "seed", { step: 1, placeholder: "random" });
  const stop = field("Stop sequences", h("input", { type: "text", name: "stop" }), "Comma-separated");
  const useDocs = field("Answer from documents", h("input", { type: "checkbox", name: "use_documents" }));
  useDocs.classList.add("check");
  const picker = h("fieldset", { class: "doc-picker", hidden: true }, h("legend", {}, "Documents (none ticked: all)"));

  const prompt = field("Message", h("textarea", { name: "prompt", rows: 3, required: true }));
  const send = h("button", { type: "submit" }, "Send");
  const clear = h("button", { type: "button", class: "secondary", onclick: () => reset() }, "New chat");
  const columns = h("div", { class: "columns" });
  const form = h(
    "form",
    { onsubmit: (e) => (e.preventDefault(), ask()) },
    h("div", { class: "grid" }, first, second, compare, useDocs),
    picker,
    h("details", {}, h("summary", {}, "Options"), h("div", { class: "grid" }, temperature, topP, maxTokens, seed, stop)),
    prompt,
    h("div", { class: "actions" }, send, clear),
  );
  main.append(h("h1", {}, "Playground"), h("section", { class: "card" }, form), columns);

  let chats = [];
  function reset() {
    const names = [first.control.value, ...(compare.control.checked ? [second.control.value] : [])];
    chats = names.map((model) => ({ model, history: [], log: h("div", { class: "log", "aria-live": "polite" }) }));
    columns.replaceChildren(
      ...chats.map((c) => h("section", { class: "card chat", "data-model": c.model }, h("h2", {}, c.model), c.log)),
    );
  }

  async function loadDocuments() {
    picker.replaceChildren(picker.firstChild);
    if (!useDocs.control.checked) return (picker.hidden = true);
    picker.hidden = false;
    try {
      const docs = (await getJson(`/listDocuments?model=${encodeURIComponent(first.control.value)}`)).data;
      if (!docs.length) picker.append(h("p", { class: "hint" }, "This model has no documents: import some on the Documents page."));
      for (const d of docs) {
        const box = field(d.name, h("input", { type: "checkbox", name: "document", value: d.name }), `${d.pages} pages`);
        box.classList.add("check");
        picker.append(box);
      }
    } catch (error) {
      picker.append(errorBox(error));
    }
  }

  compare.control.addEventListener("change", () => ((second.hidden = !compare.control.checked), reset()));
  first.control.addEventListener("change", () => (reset(), loadDocuments()));
  second.control.addEventListener("change", reset);
  useDocs.control.addEventListener("change", loadDocuments);
  reset();

  function request(chat) {
    const body = { model: chat.model, messages: chat.history, stream: true };
    const number = (f, key, parse) => f.control.value !== "" && (body[key] = parse(f.control.value));
    number(temperature, "temperature", Number);
    number(topP, "top_p", Number);
    number(maxTokens, "max_tokens", (v) => parseInt(v, 10));
    number(seed, "seed", (v) => parseInt(v, 10));
    const stops = stop.control.value.split(",").map((s) => s.trim()).filter(Boolean);
    if (stops.length) body.stop = stops;
    if (useDocs.control.checked) {
      const picked = [...picker.querySelectorAll("input:checked")].map((i) => i.value);
      if (picked.length && chat === chats[0]) body.documents = picked;
      else body.all_documents = true;
    }
    return body;
  }

  async function ask() {
    const text = prompt.control.value.trim();
    if (!text) return;
    send.disabled = true;
    prompt.control.value = "";
    announce("Generating…");
    await Promise.all(chats.map((chat) => turn(chat, text)));
    send.disabled = false;
    announce("Answer complete.");
    prompt.control.focus();
  }

  async function turn(chat, text) {
    chat.history.push({ role: "user", content: text });
    const answer = h("div", { class: "answer", "aria-busy": "true" });
    const extra = h("div");
    chat.log.append(
      h("div", { class: "turn" }, h("div", { class: "who" }, "You"), h("div", {}, text)),
      h("div", { class: "turn" }, h("div", { class: "who" }, chat.model), answer, extra),
    );
    try {
      const response = await call("/v1/chat/completions", { method: "POST", json: request(chat) });
      for await (const line of lines(response)) {
        if (!line.startsWith("data: ") || line === "data: [DONE]") continue;
        const chunk = JSON.parse(line.slice(6));
        if (chunk.error) throw new Error(chunk.error.message || JSON.stringify(chunk.error));
        answer.textContent += chunk.choices?.[0]?.delta?.content || "";
        if (chunk.sources) extra.append(sources(chunk.sources));
        if (chunk.warnings?.length) extra.append(h("ul", { class: "warnings" }, chunk.warnings.map((w) => h("li", {}, w))));
      }
      chat.history.push({ role: "assistant", content: answer.textContent });
    } catch (error) {
      chat.history.pop();
      extra.append(errorBox(error));
    }
    answer.removeAttribute("aria-busy");
  }
}

function sources(list) {
  return h(
    "div",
    { class: "sources" },
    h("strong", {}, "Sources"),
    list.map((s) =>
      h(
        "details",
        { class: "source" },
        h("summary", {}, `${s.document}, page ${s.page}`),
        h("blockquote", {}, s.passage),
      ),
    ),
  );
}
