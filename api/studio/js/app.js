// The Studio's shell: pages by URL hash (#models, #playground/NAME, #job/ID, ...), the key
// prompt, focus moved to the page on navigation.
import { onKeyNeeded } from "./api.js";
import { announce, errorBox } from "./ui.js";
import { modelsPage } from "./pages/models.js";
import { playgroundPage } from "./pages/playground.js";
import { documentsPage } from "./pages/documents.js";
import { finetunePage } from "./pages/finetune.js";
import { datasetsPage } from "./pages/datasets.js";
import { jobsPage, jobPage } from "./pages/jobs.js";

const PAGES = {
  models: modelsPage,
  playground: playgroundPage,
  documents: documentsPage,
  finetune: finetunePage,
  datasets: datasetsPage,
  jobs: jobsPage,
  job: jobPage,
};
const NAV = { job: "jobs" };

let leave = null; // what the shown page stops when another is opened (streams)

async function show() {
  const [name, ...rest] = location.hash.slice(1).split("/");
  const page = PAGES[name] ? name : "models";
  const arg = decodeURIComponent(rest.join("/"));
  if (leave) leave();
  leave = null;
  for (const a of document.querySelectorAll("nav a")) {
    a.toggleAttribute("aria-current", a.getAttribute("href") === `#${NAV[page] || page}`);
    if (a.hasAttribute("aria-current")) a.setAttribute("aria-current", "page");
  }
  const main = document.getElementById("page");
  main.replaceChildren();
  document.title = `${page[0].toUpperCase()}${page.slice(1)} - Studio`;
  try {
    leave = (await PAGES[page](main, arg)) || null;
  } catch (error) {
    main.append(errorBox(error));
  }
  main.focus();
}

// The key dialog: shown when the API answers 401; resolves with what the user entered.
onKeyNeeded((message) => {
  const dialog = document.getElementById("key-dialog");
  const input = document.getElementById("key-input");
  document.getElementById("key-message").textContent = message;
  announce(message);
  input.value = "";
  if (!dialog.open) dialog.showModal();
  input.focus();
  return new Promise((resolve) => {
    document.getElementById("key-form").onsubmit = () => resolve(input.value.trim());
  });
});

// Escape would close the prompt and leave the calls waiting for a key: it stays open.
document.getElementById("key-dialog").addEventListener("cancel", (e) => e.preventDefault());
window.addEventListener("hashchange", show);
show();
