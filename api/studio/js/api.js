// Calls to this API from the Studio: same origin, the API key (when the API asks for one)
// kept in sessionStorage and sent as the bearer key; errors as ApiError with the API's detail.

const KEY = "llm-studio-api-key";
// Where the API is: the Studio is served at <root>/studio/, under any root path a proxy adds.
export const BASE = location.pathname.replace(/\/studio(\/.*)?$/, "");

export class ApiError extends Error {
  constructor(status, detail, errors = []) {
    super(detail);
    this.status = status;
    this.detail = detail;
    this.errors = errors; // validation problems, one string each (row numbers included)
  }
}

export function apiKey() {
  return sessionStorage.getItem(KEY);
}

function headers(extra = {}) {
  const key = apiKey();
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

// One key prompt at a time: every request that got a 401 waits for the same answer.
let asking = null;
let keyPrompt = null; // set by the app: async (message) => key

export function onKeyNeeded(prompt) {
  keyPrompt = prompt;
}

function askKey(detail) {
  const message = apiKey()
    ? `The API key was refused: ${detail} Enter the right key.`
    : "This API needs its key (LLM_API_KEY). Enter it to continue.";
  if (!asking) {
    asking = keyPrompt(message).then((key) => {
      sessionStorage.setItem(KEY, key);
      asking = null;
    });
  }
  return asking;
}

async function problem(response) {
  const text = await response.text();
  try {
    const body = JSON.parse(text);
    if (body.error) return new ApiError(response.status, body.error.message || String(body.error));
    const detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
    return new ApiError(response.status, detail || response.statusText, body.errors || []);
  } catch {
    return new ApiError(response.status, text || response.statusText);
  }
}

// fetch with the key; a 401 asks for the key and tries again; a non-2xx throws ApiError.
export async function call(path, { method = "GET", json, body, signal } = {}) {
  for (;;) {
    const init = { method, signal, headers: headers(json ? { "Content-Type": "application/json" } : {}) };
    if (json !== undefined) init.body = JSON.stringify(json);
    else if (body !== undefined) init.body = body;
    const response = await fetch(BASE + path, init);
    if (response.status === 401) {
      await askKey((await problem(response)).detail);
      continue;
    }
    if (!response.ok) throw await problem(response);
    return response;
  }
}

export async function getJson(path, options) {
  return (await call(path, options)).json();
}

// Each line of a streamed body, as it arrives.
export async function* lines(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n")) >= 0) {
      yield buffer.slice(0, end).replace(/\r$/, "");
      buffer = buffer.slice(end + 1);
    }
  }
  if (buffer) yield buffer;
}

// Server-sent events read with fetch (EventSource cannot send the bearer key): each
// event's parsed `data`, until the stream ends or `signal` aborts.
export async function* events(path, signal) {
  const response = await call(path, { signal });
  let data = [];
  for await (const line of lines(response)) {
    if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
    else if (line === "" && data.length) {
      yield JSON.parse(data.join("\n"));
      data = [];
    }
  }
  if (data.length) yield JSON.parse(data.join("\n"));
}

// A multipart upload with progress (fetch reports none): onProgress(sent, total).
export function upload(path, form, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", BASE + path);
    const key = apiKey();
    if (key) xhr.setRequestHeader("Authorization", `Bearer ${key}`);
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded, e.total);
    xhr.onerror = () => reject(new ApiError(0, "The upload failed: the API could not be reached."));
    xhr.onload = async () => {
      const response = new Response(xhr.responseText, { status: xhr.status });
      if (xhr.status === 401) {
        await askKey((await problem(response)).detail);
        upload(path, form, onProgress).then(resolve, reject);
      } else if (xhr.status >= 200 && xhr.status < 300) resolve(JSON.parse(xhr.responseText));
      else reject(await problem(response));
    };
    xhr.send(form);
  });
}

// A file the API answers (e.g. a dataset download), saved by the browser under `name`.
export async function download(path, name) {
  const blob = await (await call(path)).blob();
  const a = Object.assign(document.createElement("a"), { href: URL.createObjectURL(blob), download: name });
  a.click();
  URL.revokeObjectURL(a.href);
}
