// Every call the dashboard makes goes through here: the public API, with the key from session storage.

const KEY_STORAGE = "lipspline.apiKey";
const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
const POLL_MS = 800;

export const isTerminal = (status) => TERMINAL.has(status);

export function getKey() {
  return sessionStorage.getItem(KEY_STORAGE) || "";
}

export function setKey(key) {
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
}

/** An error answer of the API: `detail` is the problem+json detail (RFC 9457), shown to the user as is. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

async function problemOf(response) {
  const text = await response.text();
  try {
    return JSON.parse(text);
  } catch {
    return { title: response.statusText, detail: text || `HTTP ${response.status} ${response.statusText}` };
  }
}

/**
 * Call the API. `json` is sent as the JSON body; `body` as is (FormData, text). `as`: "json" | "blob" | "response".
 * Throws ApiError with the problem's detail on any non-2xx answer.
 */
export async function api(path, { method = "GET", json, body, headers = {}, as = "json", signal } = {}) {
  const request = { method, signal, headers: { Authorization: `Bearer ${getKey()}`, ...headers } };
  if (json !== undefined) {
    request.body = JSON.stringify(json);
    request.headers["Content-Type"] = "application/json";
  } else if (body !== undefined) {
    request.body = body;
  }
  const response = await fetch(path, request);
  if (!response.ok) throw new ApiError(response.status, await problemOf(response));
  if (as === "response") return response;
  if (response.status === 204) return null;
  return as === "blob" ? response.blob() : response.json();
}

/**
 * Every item of a paginated list (`{items, next_cursor}`), following `next_cursor` page by page.
 * `path` may carry filters (`/v1/jobs?status=running`); pages are the largest the API serves.
 */
export async function apiList(path, { signal } = {}) {
  const url = new URL(path, window.location.origin);
  url.searchParams.set("limit", "200");
  const items = [];
  for (;;) {
    const page = await api(url.pathname + url.search, { signal });
    items.push(...page.items);
    if (!page.next_cursor) return items;
    url.searchParams.set("cursor", page.next_cursor);
  }
}

let streamRoute = null;

/** Whether this service streams job events (the route is in its OpenAPI document); asked once per page load. */
function eventStreamAvailable() {
  streamRoute ??= fetch("/openapi.json")
    .then((response) => (response.ok ? response.json() : { paths: {} }))
    .then((schema) => "/v1/jobs/{job_id}/events" in (schema.paths || {}))
    .catch(() => false);
  return streamRoute;
}

/** Parse a Server-Sent Events byte stream, calling (and awaiting) onEvent({type, data}) per message with data. */
export async function readEvents(response, onEvent) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const message = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let type = "message";
      const data = [];
      for (const line of message.split("\n")) {
        if (line.startsWith("event:")) type = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (data.length) await onEvent({ type, data: JSON.parse(data.join("\n")) });
    }
  }
}

function upsertEpoch(history, entry) {
  const at = history.findIndex((e) => e.epoch === entry.epoch);
  if (at >= 0) history[at] = entry;
  else history.push(entry);
  history.sort((a, b) => a.epoch - b.epoch);
}

/**
 * Follow a job until it ends or `signal` aborts: onJob(job) on every status or progress change,
 * onHistory(epochs) when per-epoch metrics arrive (only if `history` is true).
 * Uses the job's event stream (GET /v1/jobs/{id}/events) where the service has it and it answers
 * 200, and polls GET /v1/jobs/{id} (+ /metrics) otherwise. Returns the mode used.
 */
export async function watchJob(jobId, { onJob, onHistory, history = true, signal }) {
  const base = `/v1/jobs/${encodeURIComponent(jobId)}`;
  const refreshJob = async () => {
    const job = await api(base, { signal });
    onJob(job);
    return job;
  };
  const refreshHistory = async () => {
    if (!history) return [];
    const epochs = (await api(`${base}/metrics`, { signal })).history;
    onHistory(epochs);
    return epochs;
  };
  let job = await refreshJob();
  const epochs = await refreshHistory();
  if (isTerminal(job.status)) return "done";

  if (await eventStreamAvailable()) {
    let response = null;
    try {
      response = await api(`${base}/events`, { as: "response", signal, headers: { Accept: "text/event-stream" } });
    } catch (error) {
      if (error.name === "AbortError") return "aborted";
    }
    if (response && response.status === 200) {
      try {
        await readEvents(response, async ({ type, data: event }) => {
          const data = event.data ?? event; // each message is a JobEvent: {seq, type, job_id, data}
          if (type === "epoch") {
            if (history) {
              upsertEpoch(epochs, data);
              onHistory(epochs);
            }
            onJob({ ...job, progress: { ...job.progress, ...data } });
          } else if (type === "status" || type === "final") {
            job = await refreshJob();
          }
        });
      } catch (error) {
        if (error.name === "AbortError" || signal?.aborted) return "aborted";
        // a broken stream: fall through to polling, which picks up where it stands
      }
      job = await refreshJob();
      await refreshHistory();
      if (isTerminal(job.status)) return "stream";
    }
  }
  while (!signal?.aborted && !isTerminal(job.status)) {
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    if (signal?.aborted) break;
    job = await refreshJob();
    await refreshHistory();
  }
  return "poll";
}

/** Save a blob the API returned (downloads need the key, so they cannot be plain links). */
export function saveBlob(blob, filename) {
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
