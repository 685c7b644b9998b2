// Calls to the gramdex API from the page: JSON in and out, problem+json errors turned into one readable message,
// and the latency each call took as the browser saw it.

export class ApiError extends Error {
  constructor(status, problem) {
    const title = problem.title || `HTTP ${status}`;
    super(problem.detail ? `${title}: ${problem.detail}` : title);
    this.status = status;
    this.type = problem.type || "about:blank";
  }
}

let apiKey = "";

export function setApiKey(key) {
  apiKey = key.trim();
}

// -> {body, ms}; throws ApiError (the server said no) or TypeError (it could not be reached)
export async function call(method, path, body) {
  const headers = {accept: "application/json"};
  if (body !== undefined) headers["content-type"] = "application/json";
  if (apiKey) headers.authorization = `Bearer ${apiKey}`;
  const start = performance.now();
  const response = await fetch(path, {method, headers, body: body === undefined ? undefined : JSON.stringify(body)});
  const text = await response.text();
  const ms = performance.now() - start;
  let parsed;
  try {
    parsed = text ? JSON.parse(text) : {};
  } catch {
    parsed = {detail: text.slice(0, 300)};
  }
  if (!response.ok) throw new ApiError(response.status, parsed);
  return {body: parsed, ms};
}

export function indexPath(index, tail) {
  return `/v1/indexes/${encodeURIComponent(index)}/${tail}`;
}
