// Threadline's web chat: asks over the SSE API, shows the answer as it streams, then its citations.
// Plain browser JavaScript, no build step, no third-party code (the page's CSP allows only this origin).
"use strict";

const $ = (id) => document.getElementById(id);
const state = { threadId: null, busy: false };

function credentialHeaders() {
  const credential = $("credential").value.trim();
  return credential ? { Authorization: `Bearer ${credential}` } : {};
}

function notice(text) {
  $("notice").textContent = text || "";
  $("notice").hidden = !text;
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text; // always text, never HTML: answers quote user documents
  return node;
}

function errorMessage(body, status) {
  return (body && body.error && body.error.message) || `The gateway answered ${status}.`;
}

async function loadAssistants() {
  const select = $("assistant");
  const response = await fetch("/v1/models", { headers: credentialHeaders() });
  if (response.status === 401) {
    notice("This gateway requires a credential: paste an API key or token above.");
    return;
  }
  const body = await response.json();
  if (!response.ok) {
    notice(errorMessage(body, response.status));
    return;
  }
  notice("");
  const chosen = select.value;
  select.replaceChildren(...body.data.map((model) => element("option", "", model.id)));
  if (chosen) select.value = chosen;
}

// Server-sent events from a fetch body: EventSource can neither POST nor send an Authorization header.
async function* frames(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const raw = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const frame = { event: "message", id: null, data: [] };
      for (const line of raw.split("\n")) {
        if (line.startsWith(":")) continue; // a keep-alive comment
        const colon = line.indexOf(":");
        const name = colon < 0 ? line : line.slice(0, colon);
        let field = colon < 0 ? "" : line.slice(colon + 1);
        if (field.startsWith(" ")) field = field.slice(1);
        if (name === "event") frame.event = field;
        else if (name === "id") frame.id = field;
        else if (name === "data") frame.data.push(field);
      }
      if (frame.data.length) yield { event: frame.event, id: frame.id, data: JSON.parse(frame.data.join("\n")) };
    }
  }
}

class AnswerView {
  constructor() {
    this.node = element("div", "message assistant");
    this.node.dataset.state = "streaming";
    this.node.dataset.tokens = "0";
    this.status = element("div", "status", "Thinking\u2026");
    this.text = element("div", "text");
    this.citations = element("ol", "citations");
    this.node.append(this.status, this.text, this.citations);
    $("log").append(this.node);
  }
  token(text) {
    this.status.textContent = "";
    this.text.textContent += text;
    this.node.dataset.tokens = String(Number(this.node.dataset.tokens) + 1);
    this.node.scrollIntoView({ block: "end" });
  }
  cite(citations) {
    this.citations.replaceChildren(
      ...citations.map((c) => {
        const item = element("li", "citation");
        item.append(element("strong", "", c.document_id), element("span", "", c.text.slice(0, 240)));
        return item;
      }),
    );
  }
  end(data) {
    if (data.answer) this.text.textContent = data.answer; // the final answer is authoritative
    if (data.citations && !this.citations.children.length) this.cite(data.citations);
    this.status.textContent = "";
    this.node.dataset.state = data.status === "interrupted" ? "waiting" : "done";
    if (data.status === "interrupted") this.askApproval(data.interrupts || []);
  }
  // A tool that needs a person's approval: the run has paused; the decision continues the thread.
  askApproval(interrupts) {
    for (const waiting of interrupts) {
      const box = element("div", "approval");
      const approve = element("button", "approve", "Approve");
      const reject = element("button", "reject", "Reject");
      const decide = (action) => {
        approve.disabled = reject.disabled = true;
        this.node.dataset.state = "done";
        resume(action);
      };
      approve.addEventListener("click", () => decide("approve"));
      reject.addEventListener("click", () => decide("reject"));
      box.append(element("span", "", `Run ${waiting.name} with ${JSON.stringify(waiting.args)}?`), approve, reject);
      this.node.append(box);
    }
  }
  fail(message) {
    this.status.textContent = message;
    this.node.classList.add("error");
    this.node.dataset.state = "error";
  }
}

function setThread(threadId) {
  state.threadId = threadId;
  $("thread").textContent = threadId ? `Thread ${threadId}` : "New conversation";
  $("thread").dataset.threadId = threadId || "";
}

// Follows one run to its final event; a dropped connection resumes after the last event seen.
async function follow(view, response) {
  let location = response.headers.get("Content-Location");
  let lastId = null;
  for (let attempt = 0; attempt < 4; attempt++) {
    try {
      for await (const frame of frames(response)) {
        if (frame.id !== null) lastId = frame.id;
        if (frame.event === "metadata" && frame.data.thread_id) setThread(frame.data.thread_id);
        else if (frame.event === "token") view.token(frame.data.text || "");
        else if (frame.event === "tool_call") view.status.textContent = "Searching the knowledge base\u2026";
        else if (frame.event === "citations") view.cite(frame.data.citations || []);
        else if (frame.event === "end") {
          if (frame.data.thread_id) setThread(frame.data.thread_id);
          view.end(frame.data);
          return;
        } else if (frame.event === "error") {
          view.fail(frame.data.message || "The run failed.");
          return;
        }
      }
    } catch (err) {
      if (!location) throw err;
    }
    if (!location) break;
    const headers = { ...credentialHeaders(), ...(lastId !== null ? { "Last-Event-ID": lastId } : {}) };
    response = await fetch(`${location}/stream`, { headers });
    if (!response.ok) break;
  }
  view.fail("The connection was lost before the answer was complete.");
}

function ask(question) {
  $("log").append(element("div", "message user", question));
  return run({ input: question });
}

function resume(action) {
  $("log").append(element("div", "message user decision", action === "approve" ? "Approved." : "Rejected."));
  return run({ resume: { action } });
}

async function run(request) {
  state.busy = true;
  $("send").disabled = true;
  const view = new AnswerView();
  try {
    const body = { ...request, assistant_id: $("assistant").value || "agent" };
    if (state.threadId) body.thread_id = state.threadId;
    const response = await fetch("/api/v1/runs/stream", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "text/event-stream", ...credentialHeaders() },
      body: JSON.stringify(body),
    });
    if (!response.ok) {
      view.fail(errorMessage(await response.json().catch(() => null), response.status));
      return;
    }
    await follow(view, response);
  } catch (err) {
    view.fail(`Could not reach the gateway: ${err.message}`);
  } finally {
    state.busy = false;
    $("send").disabled = false;
    $("question").focus();
  }
}

async function upload(files) {
  const form = new FormData();
  for (const file of files) form.append("files", file, file.name);
  notice(`Uploading ${files.length} file(s)...`);
  const response = await fetch("/api/v1/documents", { method: "POST", body: form, headers: credentialHeaders() });
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    notice(`Upload refused: ${errorMessage(body, response.status)}`);
    return;
  }
  const names = body.documents.map((d) => `${d.id} (${d.chunks} chunks)`).join(", ");
  notice(`Indexed and searchable: ${names}.`);
}

function start() {
  $("credential").value = sessionStorage.getItem("threadline-credential") || "";
  $("credential").addEventListener("change", () => {
    sessionStorage.setItem("threadline-credential", $("credential").value.trim());
    loadAssistants();
  });
  $("new-thread").addEventListener("click", () => {
    setThread(null);
    $("log").replaceChildren();
    $("question").focus();
  });
  $("ask").addEventListener("submit", (event) => {
    event.preventDefault();
    const question = $("question").value.trim();
    if (!question || state.busy) return;
    $("question").value = "";
    ask(question);
  });
  $("upload").addEventListener("submit", (event) => {
    event.preventDefault();
    const files = [...$("files").files];
    if (!files.length) return;
    upload(files)
      .then(() => { $("files").value = ""; })
      .catch((err) => notice(`Upload failed: ${err.message}`));
  });
  $("question").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      $("ask").requestSubmit();
    }
  });
  loadAssistants().catch((err) => notice(`Could not reach the gateway: ${err.message}`));
}

start();
