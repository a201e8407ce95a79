// DreamForge's page: one ES module, no framework, no build step, nothing fetched from other origins.
// Story text comes from a model and is untrusted: it only ever reaches the page through textContent.

const API = "/api/v1";
const PAGE_SIZE = 12;
const $ = (id) => document.getElementById(id);

// ---------- small helpers ----------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body) {
  const options = { method, headers: { Accept: "application/json" } };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(API + path, options);
  } catch {
    throw new ApiError(0, "network", "Cannot reach DreamForge. Check your connection and try again.");
  }
  if (response.status === 204) return null;
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = (data && data.error) || {};
    throw new ApiError(response.status, error.code || "http_" + response.status, error.message || response.statusText);
  }
  return data;
}

function formatDate(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  return date.toLocaleDateString(undefined, { year: "numeric", month: "short", day: "numeric" });
}

function paragraphs(text) {
  return text.split(/\n\s*\n/).map((p) => p.trim()).filter(Boolean);
}

function showError(node, message) {
  node.textContent = message || "";
  node.hidden = !message;
}

// ---------- routing (History API; the gateway serves this page at every route) ----------

const routes = [
  [/^\/$/, () => showHome()],
  [/^\/stories\/([0-9a-f-]{36})$/, (id) => showStory(id)],
  [/^\/jobs\/([0-9a-f-]{36})$/, (id) => showJob(id)],
];

function navigate(path, { replace = false } = {}) {
  if (path !== location.pathname + location.search) {
    if (replace) history.replaceState({}, "", path);
    else history.pushState({}, "", path);
  }
  route();
}

function route() {
  stopWatching();
  for (const [pattern, show] of routes) {
    const match = location.pathname.match(pattern);
    if (match) {
      show(...match.slice(1));
      return;
    }
  }
  navigate("/", { replace: true });
}

function showView(name, heading) {
  for (const view of document.querySelectorAll(".view")) view.hidden = view.id !== "view-" + name;
  if (heading) document.title = heading + " · DreamForge";
  else document.title = "DreamForge";
}

function focusMain() {
  // Move focus to the new view so screen readers and keyboards start at its top.
  $("main").focus({ preventScroll: true });
  window.scrollTo(0, 0);
}

document.addEventListener("click", (event) => {
  const link = event.target.closest("a[data-link]");
  if (!link || event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  event.preventDefault();
  navigate(link.getAttribute("href"));
  focusMain();
});
window.addEventListener("popstate", route);

// ---------- composing ----------

const compose = $("compose");
const promptBox = $("prompt");
const generate = $("generate");

promptBox.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    compose.requestSubmit();
  }
});

compose.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (generate.disabled) return;
  const prompt = promptBox.value.trim();
  if (!prompt) {
    showError($("compose-error"), "Write a line for the story first.");
    promptBox.focus();
    return;
  }
  showError($("compose-error"), "");
  generate.disabled = true;
  compose.setAttribute("aria-busy", "true");
  generate.textContent = "Sending…";
  try {
    const body = { prompt, parts: Number($("parts").value) };
    const style = $("style").value.trim();
    if (style) body.style = style;
    const { job } = await api("POST", "/stories", body);
    promptBox.value = "";
    navigate("/jobs/" + job.id);
    focusMain();
  } catch (error) {
    showError($("compose-error"), error.message);
    promptBox.focus();
  } finally {
    generate.disabled = false;
    compose.removeAttribute("aria-busy");
    generate.textContent = "Generate";
  }
});

// ---------- library ----------

const library = { cursor: null, query: "", loading: false, generation: 0 };

function showHome() {
  showView("home");
  loadLibrary({ reset: true });
}

function storyCard(story) {
  const cover = story.cover_url
    ? el("img", { class: "cover", src: story.cover_url, alt: "", loading: "lazy", width: 300, height: 225 })
    : el("span", { class: "cover empty", "aria-hidden": "true", text: "✶" });
  const link = el(
    "a",
    { href: "/stories/" + story.id, "data-link": true },
    cover,
    el("span", { class: "title", text: story.title || "Untitled" }),
    el("time", { datetime: story.created_at || "", text: formatDate(story.created_at) }),
  );
  return el("li", {}, link);
}

async function loadLibrary({ reset = false } = {}) {
  const list = $("library");
  const status = $("library-status");
  const more = $("load-more");
  if (reset) {
    library.cursor = null;
    library.generation += 1;
  }
  const generation = library.generation;
  library.loading = true;
  more.disabled = true;
  const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (library.query) params.set("q", library.query);
  if (library.cursor) params.set("cursor", library.cursor);
  try {
    const page = await api("GET", "/stories?" + params);
    if (generation !== library.generation) return; // a newer search replaced this one
    if (reset) list.replaceChildren();
    for (const story of page.stories) list.append(storyCard(story));
    library.cursor = page.next_cursor;
    more.hidden = !page.next_cursor;
    const count = list.children.length;
    if (count === 0) {
      status.textContent = library.query
        ? `No story title contains “${library.query}”.`
        : "No stories yet. Write the first one above!";
    } else {
      status.textContent = library.query ? `${count} ${count === 1 ? "story" : "stories"} found.` : "";
    }
  } catch (error) {
    if (generation === library.generation) status.textContent = "Could not load the library: " + error.message;
  } finally {
    library.loading = false;
    more.disabled = false;
  }
}

$("load-more").addEventListener("click", () => loadLibrary());

let searchTimer = 0;
$("search-input").addEventListener("input", (event) => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => {
    library.query = event.target.value.trim();
    loadLibrary({ reset: true });
  }, 250);
});
$("search").addEventListener("submit", (event) => {
  event.preventDefault();
  clearTimeout(searchTimer);
  library.query = $("search-input").value.trim();
  loadLibrary({ reset: true });
});

// ---------- parts (shared by the live view and the reader) ----------

function partNode(container, index) {
  let node = container.querySelector(`[data-part="${index}"]`);
  if (!node) {
    const figure = el("figure", {}, el("div", { class: "placeholder", text: "Picture coming…" }));
    node = el(
      "section",
      { class: "part", "data-part": index },
      el("h2", { class: "part-title" }),
      figure,
      el("div", { class: "part-text" }),
    );
    // Keep parts in order whatever order their events arrive in.
    const after = [...container.children].find((child) => Number(child.dataset.part) > index);
    container.insertBefore(node, after || null);
  }
  return node;
}

function setPartTitle(node, title, index) {
  node.querySelector(".part-title").textContent = title || `Part ${index + 1}`;
}

function setPartText(node, text, writing = false) {
  const box = node.querySelector(".part-text");
  const blocks = paragraphs(text);
  box.replaceChildren(...(blocks.length ? blocks : [""]).map((p) => el("p", { text: p })));
  if (writing) box.lastElementChild.classList.add("writing");
}

function setPartImage(node, image, title) {
  const figure = node.querySelector("figure");
  if (!image) {
    figure.hidden = true;
    return;
  }
  const current = figure.querySelector("img");
  if (current && current.getAttribute("src") === image.url) return;
  figure.hidden = false;
  figure.replaceChildren(el("img", { src: image.url, alt: "Picture: " + (title || "story part"), width: 512, height: 512 }));
}

// ---------- live progress of a job ----------

const watch = { source: null, timer: 0, jobId: null, lastEventId: "", parts: new Map(), title: "", attempts: 0 };

function stopWatching() {
  if (watch.source) watch.source.close();
  clearTimeout(watch.timer);
  watch.source = null;
  watch.jobId = null;
}

function setProgress(percent, stage) {
  const value = Math.max(0, Math.min(100, Number(percent) || 0));
  $("job-progress").value = value;
  $("job-percent").textContent = value + "%";
  if (stage) $("job-stage").textContent = stage;
}

function describeStage(data) {
  if (data.message) return data.message;
  const names = {
    queued: "Waiting for a worker…",
    writing: "Writing the story…",
    illustrating: "Drawing the pictures…",
    saving: "Saving…",
    done: "Done.",
  };
  return names[data.stage] || data.stage || "";
}

function jobPart(index) {
  if (!watch.parts.has(index)) watch.parts.set(index, { title: "", text: "" });
  return watch.parts.get(index);
}

function finishJob(state, message) {
  $("job-cancel").hidden = true;
  const error = $("job-error");
  for (const node of document.querySelectorAll("#job-parts .writing")) node.classList.remove("writing");
  if (state === "succeeded") {
    showError(error, "");
  } else {
    showError(error, message || (state === "cancelled" ? "The story was cancelled." : "The story could not be made."));
  }
}

function handleEvent(kind, data) {
  const container = $("job-parts");
  switch (kind) {
    case "progress":
      if (data.restart) {
        // The generator threw away what it had streamed and is writing the story again.
        watch.title = "";
        watch.parts = new Map();
        $("job-title").textContent = "Your story is being written…";
        container.replaceChildren();
      }
      setProgress(data.progress, describeStage(data));
      break;
    case "text": {
      if (data.field === "story_title") {
        watch.title += data.delta;
        $("job-title").textContent = watch.title;
        break;
      }
      const part = jobPart(data.part_index);
      const node = partNode(container, data.part_index);
      if (data.field === "part_title") {
        part.title += data.delta;
        setPartTitle(node, part.title, data.part_index);
      } else {
        part.text += data.delta;
        if (!part.title) setPartTitle(node, "", data.part_index);
        setPartText(node, part.text, true);
      }
      break;
    }
    case "part": {
      const index = data.part.index;
      const part = jobPart(index);
      part.title = data.part.title;
      part.text = data.part.text;
      const node = partNode(container, index);
      setPartTitle(node, part.title, index);
      setPartText(node, part.text);
      if (data.part.image) setPartImage(node, data.part.image, part.title);
      break;
    }
    case "image": {
      const node = partNode(container, data.part_index);
      setPartImage(node, data.image, jobPart(data.part_index).title);
      break;
    }
    case "done": {
      if (data.title) $("job-title").textContent = data.title;
      setProgress(100, "Your story is ready.");
      const open = $("job-open");
      open.href = "/stories/" + data.story_id;
      open.hidden = false;
      finishJob("succeeded");
      stopWatching();
      open.focus();
      break;
    }
    case "failed":
      setProgress($("job-progress").value, data.state === "cancelled" ? "Cancelled." : "Failed.");
      finishJob(data.state, data.error && data.error.message);
      stopWatching();
      break;
  }
}

function connect(jobId) {
  // EventSource reconnects by itself (sending Last-Event-ID) after a dropped stream; when it gives
  // up (an HTTP error on reconnect) we open a new one that resumes from the last id we saw.
  const url = `${API}/jobs/${jobId}/events` + (watch.lastEventId ? `?last_event_id=${encodeURIComponent(watch.lastEventId)}` : "");
  const source = new EventSource(url);
  watch.source = source;
  for (const kind of ["progress", "text", "part", "image", "done", "failed"]) {
    source.addEventListener(kind, (event) => {
      if (watch.source !== source) return;
      if (event.lastEventId) watch.lastEventId = event.lastEventId;
      watch.attempts = 0;
      handleEvent(kind, JSON.parse(event.data));
    });
  }
  source.addEventListener("error", () => {
    if (watch.source !== source) return;
    if (source.readyState === EventSource.CLOSED) {
      watch.attempts += 1;
      const delay = Math.min(15000, 1000 * 2 ** Math.min(watch.attempts, 4));
      $("job-stage").textContent = "Connection lost; reconnecting…";
      watch.timer = setTimeout(() => {
        if (watch.jobId === jobId) refreshJob(jobId);
      }, delay);
    }
  });
}

async function refreshJob(jobId) {
  try {
    const job = await api("GET", "/jobs/" + jobId);
    if (watch.jobId !== jobId) return;
    setProgress(job.progress, describeStage(job));
    // The stream replays what happened so far (or what came after the last event we saw), so a
    // finished job's text and pictures show here too, and a reconnect misses nothing.
    connect(jobId);
  } catch (error) {
    if (watch.jobId !== jobId) return;
    if (error.status === 404 || error.status === 400) {
      $("job-title").textContent = "No such story in progress";
      showError($("job-error"), error.message);
      $("job-cancel").hidden = true;
      return;
    }
    watch.attempts += 1;
    $("job-stage").textContent = "Connection lost; reconnecting…";
    watch.timer = setTimeout(() => refreshJob(jobId), Math.min(15000, 1000 * 2 ** Math.min(watch.attempts, 4)));
  }
}

function showJob(jobId) {
  showView("job", "Writing");
  watch.jobId = jobId;
  watch.lastEventId = "";
  watch.parts = new Map();
  watch.title = "";
  watch.attempts = 0;
  $("job-title").textContent = "Your story is being written…";
  $("job-parts").replaceChildren();
  $("job-open").hidden = true;
  $("job-cancel").hidden = false;
  $("job-cancel").disabled = false;
  showError($("job-error"), "");
  setProgress(0, "Connecting…");
  refreshJob(jobId);
}

$("job-cancel").addEventListener("click", async () => {
  const jobId = watch.jobId;
  if (!jobId) return;
  const button = $("job-cancel");
  button.disabled = true;
  try {
    await api("DELETE", "/jobs/" + jobId);
    // The stream's `failed` event may have arrived first and said "Cancelled." already.
    if (watch.jobId === jobId) $("job-stage").textContent = "Cancelling…";
  } catch (error) {
    showError($("job-error"), error.message);
    button.disabled = false;
  }
});

// ---------- reader ----------

let currentStoryId = null;

async function showStory(storyId) {
  showView("story", "Story");
  currentStoryId = storyId;
  $("story-title").textContent = "Loading…";
  $("story-meta").textContent = "";
  $("story-engine").textContent = "";
  $("story-parts").replaceChildren();
  $("story-characters").replaceChildren();
  $("story-characters-section").hidden = true;
  $("story-delete").hidden = true;
  showError($("story-error"), "");
  try {
    const story = await api("GET", "/stories/" + storyId);
    if (currentStoryId !== storyId) return;
    renderStory(story);
  } catch (error) {
    if (currentStoryId !== storyId) return;
    $("story-title").textContent = error.status === 404 ? "Story not found" : "Could not load the story";
    showError($("story-error"), error.message);
  }
}

function renderStory(story) {
  document.title = (story.title || "Story") + " · DreamForge";
  $("story-title").textContent = story.title || "Untitled";
  const meta = [];
  if (story.created_at) meta.push(formatDate(story.created_at));
  if (story.style) meta.push("Style: " + story.style);
  if (story.prompt) meta.push("Prompt: “" + story.prompt + "”");
  $("story-meta").textContent = meta.join(" · ");
  const engine = $("story-engine");
  engine.textContent = story.engine.label;
  engine.classList.toggle("offline", Boolean(story.engine.offline));
  const characters = $("story-characters");
  for (const character of story.characters) {
    characters.append(el("dt", { text: character.name }), el("dd", { text: character.description }));
  }
  $("story-characters-section").hidden = story.characters.length === 0;
  const container = $("story-parts");
  for (const part of story.parts) {
    const node = partNode(container, part.index);
    setPartTitle(node, part.title, part.index);
    setPartText(node, part.text);
    setPartImage(node, part.image, part.title);
  }
  $("story-delete").hidden = false;
}

$("story-delete").addEventListener("click", () => {
  const dialog = $("confirm-delete");
  dialog.returnValue = "";
  dialog.showModal();
});

$("confirm-delete").addEventListener("close", async () => {
  if ($("confirm-delete").returnValue !== "delete" || !currentStoryId) return;
  const button = $("story-delete");
  button.disabled = true;
  try {
    await api("DELETE", "/stories/" + currentStoryId);
    navigate("/");
    focusMain();
  } catch (error) {
    showError($("story-error"), "Could not delete it: " + error.message);
  } finally {
    button.disabled = false;
  }
});

route();
