// The chat page of `stream serve` (docs/web-page.md). No framework and no build step: this
// module, index.html and chat.css, plus the vendored marked (Markdown) and DOMPurify
// (sanitizing: model output is untrusted HTML). Every data call carries the API key, which is
// kept in sessionStorage (this tab only).
import { marked } from "./vendor/marked.esm.js";

const KEY_STORAGE = "langchain-stream-api-key";
const STATUS_EVERY_MS = 15000;

const $ = (id) => document.getElementById(id);
const state = {
  key: null,
  conversationId: null,
  history: [], // {role, content} as sent to /v1/chat/completions
  controller: null, // the AbortController of the answer being streamed
  statusTimer: null,
  listed: new Set(), // ids of the conversations the server keeps for this key
};

// --- helpers -------------------------------------------------------------------------------

class ApiFailure extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function newConversationId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return "web-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

function renderMarkdown(target, text) {
  // DOMPurify is a classic script (its UMD build); marked's output is sanitized before use.
  target.innerHTML = window.DOMPurify.sanitize(marked.parse(text, { async: false }));
}

function usd(value) {
  if (value === undefined || value === null) return "–";
  return value === 0 ? "$0" : value < 0.01 ? `$${value.toFixed(5)}` : `$${value.toFixed(2)}`;
}

async function errorMessage(response) {
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) return body.error.message;
  } catch {
    // not JSON: fall through
  }
  return `the server answered ${response.status} ${response.statusText}`;
}

async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options,
    headers: { ...(options.headers || {}), Authorization: `Bearer ${state.key}` },
  });
  if (!response.ok) {
    const failure = new ApiFailure(response.status, await errorMessage(response));
    if (response.status === 401) signOut(failure.message);
    throw failure;
  }
  return response;
}

// --- sign in ---------------------------------------------------------------------------------

async function signIn(key) {
  state.key = key;
  const error = $("login-error");
  try {
    const response = await fetch("/v1/stream/status", {
      headers: { Authorization: `Bearer ${key}` },
    });
    if (!response.ok) throw new ApiFailure(response.status, await errorMessage(response));
    sessionStorage.setItem(KEY_STORAGE, key);
    showStatus(await response.json());
    newChat(); // before the page is shown: a question typed at once is not cleared after
    error.hidden = true;
    $("login").hidden = true;
    $("app").hidden = false;
    $("composer").focus();
    state.statusTimer = setInterval(refreshStatus, STATUS_EVERY_MS);
  } catch (failure) {
    state.key = null;
    sessionStorage.removeItem(KEY_STORAGE);
    error.textContent = failure.message;
    error.hidden = false;
    return;
  }
  await refreshConversations().catch(() => {}); // listed again after the next answer
}

function signOut(message) {
  if (state.controller) state.controller.abort();
  clearInterval(state.statusTimer);
  state.key = null;
  sessionStorage.removeItem(KEY_STORAGE);
  $("app").hidden = true;
  $("messages").replaceChildren();
  $("conversations").replaceChildren();
  $("login").hidden = false;
  const error = $("login-error");
  error.textContent = message || "";
  error.hidden = !message;
  $("api-key").value = "";
  $("api-key").focus();
}

// --- status: tiers, privacy, budget ----------------------------------------------------------

function showStatus(status) {
  const tiers = $("tiers");
  tiers.replaceChildren(
    ...status.tiers.map((tier) =>
      el("span", {
        class: `tier-dot ${tier.reachable ? "up" : "down"}`,
        title: tier.reachable ? `${tier.tier}: reachable` : `${tier.tier}: ${tier.reason}`,
        "data-tier": tier.tier,
        text: tier.tier,
      }),
    ),
  );
  const select = $("tier-select");
  const chosen = select.value || "stream-auto";
  select.replaceChildren(
    ...status.models.map((model) =>
      el("option", { value: model, text: model === "stream-auto" ? "auto" : model.slice(7) }),
    ),
  );
  select.value = status.models.includes(chosen) ? chosen : "stream-auto";
  const privacy = $("privacy");
  if (status.privacy === "institutional") {
    privacy.checked = true;
    privacy.disabled = true; // the server's mode: a request may tighten it, never loosen it
  }
  const budget = status.budget;
  $("budget").textContent =
    budget.left_today_usd !== undefined
      ? `Budget today: ${usd(budget.left_today_usd)} left of ${usd(budget.daily_usd)}`
      : `Spent today: ${usd(budget.spent_today_usd)} (no daily budget)`;
}

async function refreshStatus() {
  try {
    showStatus(await (await api("/v1/stream/status")).json());
  } catch {
    // shown again at the next refresh; a 401 has signed out already
  }
}

// --- conversations ---------------------------------------------------------------------------

async function refreshConversations() {
  const listing = await (await api("/v1/stream/conversations")).json();
  state.listed = new Set(listing.data.map((item) => item.id));
  const list = $("conversations");
  list.replaceChildren(
    ...listing.data.map((item) =>
      el(
        "li",
        { class: item.id === state.conversationId ? "current" : null },
        el("button", {
          type: "button",
          class: "open",
          "data-testid": "conversation",
          "data-id": item.id,
          title: new Date(item.updated * 1000).toLocaleString(),
          text: item.title,
          onclick: () => openConversation(item.id),
        }),
        el("button", {
          type: "button",
          class: "delete",
          "data-testid": "delete-conversation",
          "aria-label": `Delete “${item.title}”`,
          text: "×",
          onclick: () => deleteConversation(item.id),
        }),
      ),
    ),
  );
}

function newChat() {
  if (state.controller) state.controller.abort();
  state.conversationId = newConversationId();
  state.history = [];
  $("messages").replaceChildren();
  showSummary(null);
  for (const item of $("conversations").children) item.classList.remove("current");
}

async function openConversation(id) {
  if (state.controller) state.controller.abort();
  const conversation = await (await api(`/v1/stream/conversations/${encodeURIComponent(id)}`)).json();
  state.conversationId = id;
  state.history = [];
  const messages = $("messages");
  messages.replaceChildren();
  for (const message of conversation.messages) {
    state.history.push({ role: message.role, content: message.content });
    if (message.role === "user") messages.append(userBubble(message.content));
    else if (message.role === "assistant") {
      const answer = answerBubble();
      answer.text = message.content;
      renderMarkdown(answer.body, message.content);
      if (message.ledger) showLedger(answer.badge, message.ledger);
      messages.append(answer.node);
    }
  }
  showSummary(conversation.summary);
  await refreshConversations();
}

async function deleteConversation(id) {
  await api(`/v1/stream/conversations/${encodeURIComponent(id)}`, { method: "DELETE" });
  if (id === state.conversationId) newChat();
  await refreshConversations();
}

function showSummary(summary) {
  const box = $("summary");
  if (!summary) {
    box.hidden = true;
    return;
  }
  const lines = [`${summary.turns} earlier turns folded into ${summary.tokens} tokens:`];
  const body = el("div", {}, el("p", { text: lines[0] }));
  body.append(el("ul", {}, ...summary.notes.map((note) => el("li", { text: note }))));
  if (summary.details.length) {
    body.append(el("p", { text: "Details kept in your words:" }));
    body.append(el("ul", {}, ...summary.details.map((detail) => el("li", { text: detail }))));
  }
  $("summary-body").replaceChildren(body);
  box.hidden = false;
}

async function refreshSummary() {
  if (!state.listed.has(state.conversationId)) return; // not saved (yet)
  try {
    const id = encodeURIComponent(state.conversationId);
    const conversation = await (await api(`/v1/stream/conversations/${id}`)).json();
    showSummary(conversation.summary);
  } catch {
    // shown again after the next answer
  }
}

// --- messages and the routing badge ----------------------------------------------------------

function userBubble(text) {
  return el("div", { class: "message user", "data-testid": "question" }, el("p", { text }));
}

function answerBubble() {
  const body = el("div", { class: "markdown" });
  const badge = el("div", { class: "badge" });
  const actions = el("div", { class: "actions" });
  const node = el("article", { class: "message assistant", "data-testid": "answer" }, body, badge, actions);
  const answer = { node, body, badge, actions, text: "" };
  actions.append(
    el("button", {
      type: "button",
      class: "link",
      "data-testid": "copy",
      text: "Copy",
      onclick: () => navigator.clipboard.writeText(answer.text),
    }),
    el("button", {
      type: "button",
      class: "link",
      "data-testid": "retry",
      text: "Retry",
      onclick: () => retry(answer),
    }),
  );
  return answer;
}

function tierBadge(tier, model) {
  return [
    el("span", { class: `tier tier-${tier}`, "data-testid": "routing-tier", text: tier }),
    model ? el("span", { class: "model", text: model }) : null,
  ];
}

// The routing record the stream's chunks carry (the first chunk: tier, model, judge, TTFT,
// tiers tried; the last: usage, speed, cost), shown under the answer.
function showRouting(badge, record, pageTtftMs) {
  const parts = [...tierBadge(record.tier, record.model)];
  if (record.complexity) {
    const score = record.scores && record.scores[record.complexity];
    const judged = record.reason === "judge"
      ? `${record.complexity} by the ${record.judge || ""} judge${score !== undefined ? ` (${score.toFixed(2)})` : ""}`
      : `${record.complexity}, routed by ${record.reason}`;
    parts.push(el("span", { "data-testid": "routing-reason", text: judged }));
  } else if (record.reason) {
    parts.push(el("span", { "data-testid": "routing-reason", text: `routed by ${record.reason}` }));
  }
  if (record.ttft_ms !== undefined) {
    const seen = pageTtftMs !== undefined ? `, ${Math.round(pageTtftMs)} ms here` : "";
    parts.push(el("span", { text: `TTFT ${Math.round(record.ttft_ms)} ms${seen}` }));
  }
  if (record.tokens_per_s !== undefined) {
    parts.push(el("span", { text: `${record.tokens_per_s.toFixed(1)} tok/s` }));
  }
  if (record.usage) {
    parts.push(el("span", { text: `${record.usage.input_tokens} in · ${record.usage.output_tokens} out` }));
  }
  if (record.cost_usd !== undefined) {
    const cloud = record.cloud_equivalent_usd;
    const saved = cloud !== undefined && record.tier !== "cloud" ? ` (cloud: ${usd(cloud)})` : "";
    parts.push(el("span", { "data-testid": "routing-cost", text: `cost ${usd(record.cost_usd)}${saved}` }));
  }
  const events = (record.tiers_tried || [])
    .filter((attempt) => attempt.error)
    .map((attempt) => `${attempt.tier} unavailable → ${record.tier}`);
  for (const policy of record.policies || []) events.push(policy);
  if (record.compression && record.compression.applied) {
    const c = record.compression;
    events.push(`history compressed ${c.tokens_before ?? "?"} → ${c.tokens_after ?? "?"} tokens`);
  }
  badge.replaceChildren(...parts);
  if (events.length) {
    badge.append(el("div", { class: "events", "data-testid": "routing-events", text: events.join(" · ") }));
  }
}

function showLedger(badge, row) {
  const saved = row.cloud_equivalent_usd !== null && row.tier !== "cloud"
    ? ` (cloud: ${usd(row.cloud_equivalent_usd)})` : "";
  badge.replaceChildren(
    ...tierBadge(row.tier, row.model),
    el("span", { text: `${row.input_tokens} in · ${row.output_tokens} out` }),
    el("span", { text: `cost ${usd(row.cost_usd)}${saved}` }),
  );
}

// --- sending and streaming ------------------------------------------------------------------

function busy(streaming) {
  $("send").hidden = streaming;
  $("stop").hidden = !streaming;
}

async function send(text) {
  if (!text.trim() || state.controller) return;
  state.history.push({ role: "user", content: text });
  $("messages").append(userBubble(text));
  await answer();
}

async function retry(previous) {
  if (state.controller) return;
  if (state.history.at(-1) && state.history.at(-1).role === "assistant") state.history.pop();
  previous.node.remove();
  await answer();
}

async function answer() {
  const messages = $("messages");
  const shown = answerBubble();
  shown.body.append(el("span", { class: "cursor" }));
  messages.append(shown.node);
  shown.node.scrollIntoView({ block: "end" });
  const controller = new AbortController();
  state.controller = controller;
  busy(true);
  const body = {
    model: $("tier-select").value || "stream-auto",
    messages: state.history,
    stream: true,
    stream_options: { include_usage: true },
    conversation_id: state.conversationId,
  };
  if ($("privacy").checked) body.privacy = "institutional";
  const started = performance.now();
  let record = {};
  let ttft;
  let frame = 0;
  try {
    const response = await api("/v1/chat/completions", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      signal: controller.signal,
    });
    for await (const event of serverSentEvents(response.body)) {
      if (event.name === "error") throw new Error(JSON.parse(event.data).error.message);
      if (event.data === "[DONE]") break;
      const chunk = JSON.parse(event.data);
      if (chunk.routing) {
        record = { ...record, ...chunk.routing };
        showRouting(shown.badge, record, ttft);
      }
      const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
      if (delta && delta.content) {
        if (ttft === undefined) {
          ttft = performance.now() - started;
          shown.node.dataset.ttftMs = ttft.toFixed(1);
          showRouting(shown.badge, record, ttft);
        }
        shown.text += delta.content;
        if (!frame) {
          frame = requestAnimationFrame(() => {
            frame = 0;
            renderMarkdown(shown.body, shown.text);
          });
        }
      }
    }
    cancelAnimationFrame(frame);
    renderMarkdown(shown.body, shown.text);
    state.history.push({ role: "assistant", content: shown.text });
    shown.node.dataset.state = "done";
  } catch (failure) {
    cancelAnimationFrame(frame);
    renderMarkdown(shown.body, shown.text);
    if (controller.signal.aborted) {
      shown.node.dataset.state = "stopped";
      shown.badge.append(el("div", { class: "events", "data-testid": "stopped", text: "stopped" }));
      // Keep what was shown, so the next question sees it, as in the page.
      if (shown.text) state.history.push({ role: "assistant", content: shown.text });
    } else {
      shown.node.dataset.state = "error";
      shown.body.append(el("p", { class: "error", "data-testid": "answer-error", text: failure.message }));
    }
  } finally {
    state.controller = null;
    busy(false);
  }
  if (state.key) {
    await Promise.allSettled([refreshConversations(), refreshStatus()]);
    await refreshSummary();
  }
}

// One server-sent event at a time: {name, data}.
async function* serverSentEvents(stream) {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = null;
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (data.length) yield { name, data: data.join("\n") };
    }
  }
}

// --- wiring ----------------------------------------------------------------------------------

$("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const key = $("api-key").value.trim();
  if (key) signIn(key);
});
$("composer-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const composer = $("composer");
  const text = composer.value;
  composer.value = "";
  send(text);
});
$("composer").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    $("composer-form").requestSubmit();
  }
});
$("stop").addEventListener("click", () => state.controller && state.controller.abort());
$("new-chat").addEventListener("click", newChat);
$("sign-out").addEventListener("click", () => signOut());

const saved = sessionStorage.getItem(KEY_STORAGE);
if (saved) signIn(saved);
else $("api-key").focus();
